"""A planted counter never makes bumps fail (issue 19).

A client with only ``SET`` on the generation counters writes junk or a number near 2^63 into one. Before, a
signed bump took the junk's leading digits for the counter's value and tried to go above them (5 attempts, then
a ``DriverError``): every write of that scope failed and the scope stayed private, in every process, for as long
as the junk stayed. An unsigned bump ``INCR``\\ ed it and Redis answered an error. Now junk is untrusted input: the
bump overwrites it with a fresh value (counted and logged once for a signed namespace) and every process
converges on that value.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from diskcache.core import MODE_RAW

from cachekit import Cache
from cachekit.generations import store_for
from cachekit.generations._signing import GenerationSeal

from .test_generation_auth_hostile import SIGNING_KEY, Users, _item_counter, _setup, acl_client, wait_until

__all__ = ["acl_client"]  # the fixture, imported for the tests below

JUNK = [
    b"9" * 25 + b"." + b"00" * 16,  # a number past 2^63 with a MAC-shaped tail
    b"9223372036854775807." + b"ab" * 16,  # 2^63 - 1, forged MAC
    b"99999999999999999999",
    b"not a counter",
    b"",
]


@pytest.mark.redis
@pytest.mark.parametrize("junk", JUNK, ids=["huge-sealed-shape", "int64-max", "huge-plain", "text", "empty"])
def test_a_signed_bump_overwrites_a_planted_counter(
    redis_url: str, redis_prefix: str, acl_client: Callable[[str], Any], junk: bytes
) -> None:
    import redis

    reader, writer, _rows = _setup(redis_url, redis_prefix)
    admin = redis.Redis.from_url(redis_url)
    counter = _item_counter(reader.cache, admin)
    scope = counter.split("}/", 1)[1]
    seal = GenerationSeal(SIGNING_KEY)
    before = seal.open_text("gens", scope, admin.get(counter))
    assert before is not None
    acl_client(f"resetkeys ~{redis_prefix}~gen/* +set").set(counter, junk)
    store = store_for(writer.cache.driver)
    refused = store.refused_values
    writer.update("alice", "admin")
    assert writer.cache.pending_invalidations == frozenset()  # the bump reached Redis: no private fallback
    after = seal.open_text("gens", scope, admin.get(counter))
    assert after is not None
    assert after > before
    assert store.refused_values == refused + 1  # counted
    assert wait_until(lambda: reader.get("alice") == "admin")
    writer.update("alice", "owner")  # and the next bump goes on from there
    assert writer.cache.pending_invalidations == frozenset()
    later = seal.open_text("gens", scope, admin.get(counter))
    assert later is not None
    assert later > after
    admin.close()
    for repo in (reader, writer):
        repo.cache.close()


@pytest.mark.redis
@pytest.mark.parametrize("junk", JUNK[1:], ids=["int64-max", "huge-plain", "text", "empty"])
def test_an_unsigned_bump_overwrites_a_planted_counter(
    redis_url: str, redis_prefix: str, acl_client: Callable[[str], Any], junk: bytes
) -> None:
    import redis

    rows = {"alice": "guest"}
    options = {"url": redis_url, "key_prefix": redis_prefix}
    reader = Users(Cache("redis", namespace="gens", config=options), rows)
    writer = Users(Cache("redis", namespace="gens", config=options), rows)
    for cache in (reader.cache, writer.cache):
        assert wait_until(lambda c=cache: store_for(c.driver).trusted("gens"))
    assert reader.get("alice") == "guest"
    admin = redis.Redis.from_url(redis_url)
    writer.update("alice", "guest")  # the item's counter exists from its first bump
    counter = _item_counter(reader.cache, admin)
    acl_client(f"resetkeys ~{redis_prefix}~gen/* +set").set(counter, junk)
    writer.update("alice", "admin")
    assert writer.cache.pending_invalidations == frozenset()
    assert 0 < int(admin.get(counter)) < 1 << 53  # a counter again, at the clock
    assert wait_until(lambda: reader.get("alice") == "admin")
    fresh = Users(Cache("redis", namespace="gens", config=options), rows)
    assert fresh.get("alice") == "admin"
    admin.close()
    for repo in (reader, writer, fresh):
        repo.cache.close()


@pytest.mark.parametrize("scope", ["item", "floor"])
def test_a_filesystem_bump_overwrites_a_planted_huge_counter(tmp_path: Path, scope: str) -> None:
    """``~generations`` written by another process: 2^63 - 1 (a valid SQLite integer) in a scope's record or in
    the namespace's floor. Before, the bump's + 1 overflowed what a record holds and every bump of it failed."""
    from .test_generation_records_hostile import _cache, _keys, _plant, _Users

    repo = _Users(_cache(tmp_path, "filesystem"))
    repo.get("alice")
    repo.update("alice")
    (key,) = [k for k in _keys(tmp_path) if "/users/item/" in k]
    target = key if scope == "item" else "hostile/~floor"
    _plant(tmp_path, target, mode=MODE_RAW, filename=None, value=(1 << 63) - 1, expire=None)
    version = repo.get("alice")["version"]
    repo.update("alice")
    assert repo.cache.pending_invalidations == frozenset()
    assert repo.get("alice")["version"] == version + 1
    fresh = _Users(_cache(tmp_path, "filesystem"))
    fresh.version = repo.version
    assert fresh.get("alice")["version"] == version + 1
    repo.cache.close()
    fresh.cache.close()
