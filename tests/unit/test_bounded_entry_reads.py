"""Bounded entry reads (issue 19, item 6): junk far over ``max_value_bytes`` under a key is refused unread.

Another writer of the backend (a second Redis client, a second S3 client, plain SQL on the directory) stores
32 MiB under the key of a decorated read whose namespace accepts at most 1 MiB: the read allocates a small part
of that (Redis ``GETRANGE``, S3 ``Content-Length``, SQLite ``length()``), counts a corrupt entry and returns the
source's value (served uncached).
"""

from __future__ import annotations

import sqlite3
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache, cached

JUNK = 32 << 20
LIMIT = 1 << 20


class Users:
    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.calls = 0

    @cached(action="get")
    def get(self, id: str) -> dict[str, str]:
        self.calls += 1
        return {"id": id}


def _read_with_junk(cache: Cache, plant: Callable[[str, bytes], None]) -> None:
    users = Users(cache)
    key = users.get.cache_key("alice")
    plant(key, b"\x00" * JUNK)
    errors = cache.errors
    tracemalloc.start()
    try:
        value = users.get("alice")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert value == {"id": "alice"}  # served from the source
    assert users.calls == 1
    assert cache.errors == errors + 1  # counted as a corrupt entry
    assert peak < 8 * LIMIT, f"one read of a planted {JUNK}-byte entry allocated {peak} bytes"
    cache.close()


@pytest.mark.redis
def test_redis_reads_at_most_the_limit(redis_url: str, redis_prefix: str) -> None:
    import redis

    config = {"url": redis_url, "key_prefix": redis_prefix, "max_value_bytes": LIMIT}
    client = redis.Redis.from_url(redis_url)
    _read_with_junk(Cache("redis", namespace="bounded", config=config),
                    lambda key, blob: client.set(redis_prefix + key, blob))
    client.close()


@pytest.mark.s3
def test_s3_reads_at_most_the_limit(s3_client: Any, s3_bucket: str) -> None:
    config = {"bucket": s3_bucket, "client": s3_client, "key_prefix": "b/", "max_value_bytes": LIMIT}
    cache = Cache("s3", namespace="bounded", config=config)
    _read_with_junk(cache, lambda key, blob: s3_client.put_object(Bucket=s3_bucket, Key=cache.driver._object_key(key),
                                                                   Body=blob))


def test_the_filesystem_reads_at_most_the_limit(tmp_path: Path) -> None:
    cache = Cache("filesystem", namespace="bounded", config={"directory": str(tmp_path), "max_value_bytes": LIMIT})

    def plant(key: str, blob: bytes) -> None:
        cache.driver.set(key, b"placeholder", 300)  # the row as cachekit writes it, then its value replaced
        con = sqlite3.connect(tmp_path / "cache.db")
        con.execute("UPDATE Cache SET value = ? WHERE key = ?", (blob, cache.driver.key_prefix + key))
        con.commit()
        con.close()

    _read_with_junk(cache, plant)


@pytest.mark.redis
@pytest.mark.parametrize("method", ["aget", "aget_with_expiry"])
def test_async_redis_reads_at_most_the_limit(redis_url: str, redis_prefix: str, method: str) -> None:
    """``aget``, and the async GET + PTTL of a tier read (it was a whole GET)."""
    import asyncio

    import redis

    from cachekit.errors import CorruptEntryError

    config = {"url": redis_url, "key_prefix": redis_prefix, "max_value_bytes": LIMIT}
    cache = Cache("redis", namespace="bounded", config=config)
    client = redis.Redis.from_url(redis_url)
    client.set(redis_prefix + "bounded-raw", b"\x00" * JUNK, ex=60)

    async def read() -> None:
        with pytest.raises(CorruptEntryError):
            await getattr(cache.driver, method)("bounded-raw")

    tracemalloc.start()
    try:
        asyncio.run(read())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * LIMIT
    client.close()
    cache.close()


@pytest.mark.redis
def test_a_redis_tier_reads_at_most_the_limit(redis_url: str, redis_prefix: str) -> None:
    """Memory in front of Redis: the Redis tier's read (GET and PTTL in one round trip) is bounded too."""
    import redis

    tiers = [{"driver": "memory"}, {"driver": "redis", "config": {"url": redis_url, "key_prefix": redis_prefix}}]
    cache = Cache(drivers=tiers, namespace="bounded", config={"max_value_bytes": LIMIT})
    client = redis.Redis.from_url(redis_url)
    _read_with_junk(cache, lambda key, blob: client.set(redis_prefix + key, blob))
    client.close()


def _batch_with_junk(cache: Cache, plant: Callable[[str, bytes], None], read: Callable[[list[str]], Any]) -> None:
    """``get_many`` (or an async twin run by ``read``) over a good key and a planted one: bounded, counted."""
    cache.set("good", {"id": "good"})
    plant(cache._full_key("junk"), b"\x00" * JUNK)
    errors = cache.errors
    tracemalloc.start()
    try:
        found = read(["good", "junk"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "junk" not in found  # never a value: the caller loads it from the source
    assert cache.errors == errors + 1  # counted as a corrupt entry
    assert peak < 8 * LIMIT, f"a get_many over a planted {JUNK}-byte entry allocated {peak} bytes"
    assert cache.get_many(["good"]) == {"good": {"id": "good"}}  # the driver still answers
    cache.close()


@pytest.mark.redis
@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("server", ["redis", "cluster"])
def test_redis_get_many_reads_at_most_the_limit(
    request: pytest.FixtureRequest, redis_prefix: str, flavour: str, server: str
) -> None:
    """Before, ``get_many`` was one MGET of whole values: 32 MiB of junk under one key cost a reader 100 MB."""
    import asyncio

    import redis
    from redis.cluster import RedisCluster

    url = request.getfixturevalue("redis_url" if server == "redis" else "redis_cluster_url")
    config = {"url": url, "key_prefix": redis_prefix, "max_value_bytes": LIMIT}
    cache = Cache("redis", namespace="bounded", config=config)
    plain = url.replace("redis+cluster://", "redis://")
    client = redis.Redis.from_url(plain) if server == "redis" else RedisCluster.from_url(plain)

    def read(keys: list[str]) -> Any:
        if flavour == "sync":
            return cache.get_many(keys)
        return asyncio.run(cache.aget_many(keys))

    _batch_with_junk(cache, lambda key, blob: client.set(redis_prefix + key, blob), read)
    client.close()
