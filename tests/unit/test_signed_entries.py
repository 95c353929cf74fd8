"""Planted and altered entries on a shared Redis and S3 (moto's server) with ``signing_key`` (issue 9).

Another tenant of the backend writes a valid but unsigned envelope, one signed with its own key, or flips a
bit in ours: each is a miss, counted in ``stats().errors``, dropped, and the read returns fresh data.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from cachekit import Cache, cached
from cachekit.codecs import Codec
from cachekit.errors import CacheWarning

SIGNING_KEY = b"tenant-a-signing-key-0123456789"
FOREIGN_KEY = b"tenant-b-signing-key-0123456789"


class Users:
    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.calls = 0

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any]:
        self.calls += 1
        return {"id": id, "calls": self.calls}


@pytest.fixture(params=["redis", "s3"])
def signed_cache(request: pytest.FixtureRequest) -> Iterator[Cache]:
    if request.param == "redis":
        config: dict[str, Any] = {"url": request.getfixturevalue("redis_url"),
                                  "key_prefix": request.getfixturevalue("redis_prefix")}
    else:
        config = {"bucket": request.getfixturevalue("s3_bucket"), "client": request.getfixturevalue("s3_client"),
                  "key_prefix": "signed/"}
    cache = Cache(driver=request.param, namespace="signed", ttl=300,
                  config={**config, "signing_key": SIGNING_KEY})
    yield cache
    cache.close()


def _read_through(repo: Users, id: str) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # a refused entry is logged and counted, never a warning
        return repo.get(id)


def test_stored_entries_are_signed_and_hit(signed_cache: Cache) -> None:
    repo = Users(signed_cache)
    assert _read_through(repo, "u1") == {"id": "u1", "calls": 1}
    assert _read_through(repo, "u1") == {"id": "u1", "calls": 1}
    blob = signed_cache.driver.get(repo.get.cache_key("u1"))
    assert Codec(signing_key=SIGNING_KEY).decode(blob, repo.get.cache_key("u1")) == {"id": "u1", "calls": 1}
    assert signed_cache.stats().hits == 1


@pytest.mark.parametrize("forgery", ["unsigned", "foreign-key", "bit-flip"])
def test_a_planted_or_altered_entry_is_a_counted_miss(signed_cache: Cache, forgery: str) -> None:
    repo = Users(signed_cache)
    key = repo.get.cache_key("u1")
    assert _read_through(repo, "u1") == {"id": "u1", "calls": 1}
    if forgery == "unsigned":
        planted = Codec().encode({"id": "u1", "admin": True}, 300)  # a valid envelope, without our key
    elif forgery == "foreign-key":
        planted = Codec(signing_key=FOREIGN_KEY).encode({"id": "u1", "admin": True}, 300)
    else:
        stored = bytearray(signed_cache.driver.get(key))
        stored[len(stored) // 2] ^= 0x04
        planted = bytes(stored)
    signed_cache.driver.set(key, planted, 300)  # written straight to the shared backend, as another tenant could
    errors = signed_cache.stats().errors
    fresh = _read_through(repo, "u1")
    assert fresh == {"id": "u1", "calls": 2}  # the source was called: the planted value was not served
    assert "admin" not in fresh
    assert signed_cache.stats().errors == errors + 1
    assert _read_through(repo, "u1") == fresh  # the fresh, signed value replaced it: a hit
    assert repo.calls == 2


def test_key_rotation_keeps_hits_through_the_switch(redis_url: str, redis_prefix: str) -> None:
    config = {"url": redis_url, "key_prefix": redis_prefix}
    old = Cache(driver="redis", namespace="rot", config={**config, "signing_key": FOREIGN_KEY})
    rotated = Cache(driver="redis", namespace="rot",
                    config={**config, "signing_key": SIGNING_KEY, "verify_keys": [FOREIGN_KEY]})
    retired = Cache(driver="redis", namespace="rot", config={**config, "signing_key": SIGNING_KEY})
    try:
        old.set("k", "written with the old key")
        assert rotated.get("k") == "written with the old key"  # still accepted during the rotation
        assert retired.get("k") is None  # once the old key is dropped, its entries are misses
        assert retired.stats().errors == 1
    finally:
        for cache in (old, rotated, retired):
            cache.close()
