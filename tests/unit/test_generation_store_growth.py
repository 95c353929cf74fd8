"""Generation stores do not grow with reads, and stay bounded under writes (issue 19, item 5).

Reads of ids that do not exist (attacker-chosen) must not create a record on the filesystem (no write
transaction on the read path) nor, on Redis, a counter (a scope never bumped reads as its namespace's floor).
Writes of attacker-chosen ids keep the filesystem store within its cap, and a dropped scope never reads below a
value it had (its namespace's floor is raised first).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache, cached
from cachekit.generations import polled
from cachekit.generations.polled import FilesystemGenerations

_SWEEP_EVERY: int = getattr(polled, "_SWEEP_EVERY", 1000)


class Users:
    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    @cached(action="get")
    def get(self, id: str) -> Any:
        return None  # no such user


def _rows(directory: Path) -> int:
    con = sqlite3.connect(directory / "~generations" / "cache.db")
    try:
        ((count,),) = con.execute("SELECT COUNT(*) FROM Cache").fetchall()
    finally:
        con.close()
    return int(count)


def test_reads_of_unknown_ids_create_no_filesystem_record(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    cache = Cache("filesystem", namespace="growth", config={"directory": str(directory), "max_bytes": 1 << 20})
    users = Users(cache)
    users.get("warm-up")
    before = _rows(directory)
    for index in range(5000):
        assert users.get(f"nobody-{index}") is None
    assert _rows(directory) == before  # 0 records for 5,000 reads (there were 5,000)
    cache.close()


def test_the_filesystem_store_keeps_its_cap_and_never_goes_back(tmp_path: Path) -> None:
    store = FilesystemGenerations(tmp_path)
    store.limit = 100
    try:
        first = store.bump("ns", ["users/item/0"])[0]
        for index in range(1, 2500):
            store.bump("ns", [f"users/item/{index}"])
        assert _rows(tmp_path) <= store.limit + _SWEEP_EVERY + 2  # the bound: limit + one sweep interval
        assert getattr(store, "dropped_records", 0) >= 2500 - store.limit - _SWEEP_EVERY
        (again,) = store.read("ns", ["users/item/0"])  # dropped: reads the floor, at or above its last value
        assert again >= first
        (bumped,) = store.bump("ns", ["users/item/0"])
        assert bumped > again
    finally:
        store.close()


@pytest.mark.redis
def test_reads_of_scopes_never_bumped_create_no_redis_key(redis_url: str, redis_prefix: str) -> None:
    """10,000 reads of ids that do not exist: before, 10,000 counters (each living as long as the entries)."""
    import redis

    cache = Cache("redis", namespace="growth", ttl=300, config={"url": redis_url, "key_prefix": redis_prefix})
    store = cache._gens.store
    client = redis.Redis.from_url(redis_url)

    def records() -> list[bytes]:
        return list(client.scan_iter(match=redis_prefix + "~gen/*", count=1000))

    store.read("growth", ["users/item/warm-up"])  # the namespace's own record (its floor), once
    before = records()
    assert len(before) <= 1
    for start in range(0, 10_000, 100):  # as untrusted reads send them: one script per batch of scopes
        store.read("growth", [f"users/item/nobody-{index}" for index in range(start, start + 100)])
    users = Users(cache)
    for index in range(200):  # and through the decorator
        users.get(f"nobody-{index}")
    assert records() == before
    (bumped,) = store.bump("growth", ["users/item/nobody-7"])  # a bump creates its counter
    assert len(records()) == len(before) + 1
    assert store.read("growth", ["users/item/nobody-7"]) == [bumped]
    assert store.read("growth", ["users/item/nobody-8"])[0] < bumped  # never bumped: still the floor
    client.close()
    cache.close()


# The bound on what reads create in an authenticated store: its scope groups (cachekit.generations._groups).
GROUPS = 1024
SIGNING_KEY = b"growth-signing-key-0123456789"


@pytest.mark.redis
def test_signed_reads_of_scopes_never_bumped_create_at_most_the_groups(redis_url: str, redis_prefix: str) -> None:
    """10,000 reads of ids that do not exist in a signed namespace: before, one sealed counter per scope read
    (10,000 keys, each living as long as the entries); now only group counters, at most GROUPS."""
    import redis

    config = {"url": redis_url, "key_prefix": redis_prefix, "signing_key": SIGNING_KEY}
    cache = Cache("redis", namespace="growth", ttl=300, config=config)
    store = cache._gens.store
    client = redis.Redis.from_url(redis_url)

    def records() -> list[str]:
        return [k.decode() for k in client.scan_iter(match=redis_prefix + "~gen/*", count=1000)]

    for start in range(0, 10_000, 100):  # as untrusted reads send them: one script per batch of scopes
        store.read("growth", [f"users/item/nobody-{index}" for index in range(start, start + 100)])
    users = Users(cache)
    for index in range(200):  # and through the decorator
        users.get(f"nobody-{index}")
    found = records()
    assert [k for k in found if "/~group/" not in k] == []  # no counter of a scope
    assert len(found) <= GROUPS
    values = store.read("growth", ["users/item/nobody-7", "users/item/nobody-8"])
    assert store.read("growth", ["users/item/nobody-7", "users/item/nobody-8"]) == values  # stable
    (bumped,) = store.bump("growth", ["users/item/nobody-7"])  # a bump creates its counter (and raises its group)
    assert len([k for k in records() if "/~group/" not in k]) == 1
    assert store.read("growth", ["users/item/nobody-7"]) == [bumped]
    assert bumped > values[0]
    client.close()
    cache.close()


@pytest.mark.redis
def test_signed_async_reads_create_at_most_the_groups(redis_url: str, redis_prefix: str) -> None:
    """``aread`` (the event loop's path; signed: the executor) writes what ``read`` writes: groups only."""
    import asyncio

    import redis

    config = {"url": redis_url, "key_prefix": redis_prefix, "signing_key": SIGNING_KEY}
    cache = Cache("redis", namespace="growth", ttl=300, config=config)
    store = cache._gens.store

    async def reads() -> None:
        for start in range(0, 2000, 100):
            await store.aread("growth", [f"users/item/nobody-{index}" for index in range(start, start + 100)])

    asyncio.run(reads())
    client = redis.Redis.from_url(redis_url)
    found = [k.decode() for k in client.scan_iter(match=redis_prefix + "~gen/*", count=1000)]
    assert [k for k in found if "/~group/" not in k] == []
    assert len(found) <= GROUPS
    client.close()
    cache.close()


def test_signed_filesystem_reads_create_at_most_the_groups(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    config = {"directory": str(directory), "max_bytes": 1 << 20, "signing_key": SIGNING_KEY}
    cache = Cache("filesystem", namespace="growth", config=config)
    store = cache._gens.store
    for start in range(0, 5000, 100):
        store.read("growth", [f"users/item/nobody-{index}" for index in range(start, start + 100)])
    users = Users(cache)
    for index in range(200):
        assert users.get(f"nobody-{index}") is None
    assert _rows(directory) <= GROUPS + 2  # the groups, and the epoch and floor records at most
    cache.close()


@pytest.mark.s3
def test_s3_reads_create_at_most_the_groups(s3_client: Any, s3_bucket: str) -> None:
    cache = Cache("s3", namespace="growth", config={"bucket": s3_bucket, "client": s3_client, "key_prefix": "g/"})
    store = cache._gens.store
    for start in range(0, 400, 100):  # a few hundred: each is a GET (and a group's first read a PUT) on moto
        store.read("growth", [f"users/item/nobody-{index}" for index in range(start, start + 100)])
    pages = s3_client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket, Prefix="g/~gen/")
    found = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert found
    assert [k for k in found if "/~group/" not in k] == []  # group tokens only, never one per scope
    cache.close()


def test_a_signed_filesystem_scope_dropped_for_the_cap_reads_its_value_or_later(tmp_path: Path) -> None:
    """Signed: a scope whose record was dropped reads its group's value, at or above every value it had."""
    from cachekit.generations._signing import GenerationSeal

    store = FilesystemGenerations(tmp_path)
    store.use_seal("ns", GenerationSeal(SIGNING_KEY))
    store.limit = 100
    try:
        first = store.bump("ns", ["users/item/0"])[0]
        for index in range(1, 2500):
            store.bump("ns", [f"users/item/{index}"])
        assert store.dropped_records >= 2500 - store.limit - _SWEEP_EVERY
        assert _rows(tmp_path) <= store.limit + _SWEEP_EVERY + GROUPS + 2  # and the groups, never swept
        (again,) = store.read("ns", ["users/item/0"])
        assert again >= first
        (bumped,) = store.bump("ns", ["users/item/0"])
        assert bumped > again
    finally:
        store.close()
