"""``add`` (store if absent) and ``replace`` (compare-and-set), and their async twins, on every driver.

Django's ``add``/``incr``/``touch`` (``cachekit.django``) are built on them. Memory (its lock), Redis (``SET NX``,
one Lua call) and tiers over those are atomic: the threaded tests hold them to it.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from cachekit import MISSING
from cachekit.drivers.base import Driver
from tests.contract.conftest import Harness

#: Drivers whose add/replace are atomic across threads (and processes, for Redis).
ATOMIC = {"memory", "filesystem", "partition-filesystem", "redis", "redis-cluster", "tiered"}


def test_add_stores_only_when_absent(driver: Driver) -> None:
    assert driver.add("k", b"first", 60) is True
    assert driver.add("k", b"second", 60) is False
    assert driver.get("k") == b"first"
    assert driver.add("free", b"x", 0) is True  # a TTL of 0 stores nothing
    assert driver.get("free") is MISSING
    assert driver.add("k", b"x", 0) is False


def test_add_after_expiry(harness: Harness) -> None:
    driver = harness.driver
    assert driver.add("k", b"old", harness.short_ttl)
    harness.pass_time(harness.short_ttl + 0.2)
    assert driver.add("k", b"new", 60) is True
    assert driver.get("k") == b"new"


def test_replace_is_compare_and_set(driver: Driver) -> None:
    assert driver.replace("missing", b"a", b"b", 60) is False
    assert driver.get("missing") is MISSING
    driver.set("k", b"v1", 60)
    assert driver.replace("k", b"other", b"v2", 60) is False
    assert driver.get("k") == b"v1"
    assert driver.replace("k", b"v1", b"v2", None) is True
    assert driver.get("k") == b"v2"
    assert driver.replace("k", b"v2", b"gone", 0) is True  # TTL 0: removed
    assert driver.get("k") is MISSING


def test_async_twins(driver: Driver) -> None:
    async def body() -> None:
        assert await driver.aadd("k", b"v1", 60) is True
        assert await driver.aadd("k", b"v2", 60) is False
        assert await driver.areplace("k", b"nope", b"v3", 60) is False
        assert await driver.areplace("k", b"v1", b"v3", 60) is True
        assert await driver.aget("k") == b"v3"
        await driver.aclose()

    asyncio.run(body())


def test_concurrent_adds_and_replaces_are_atomic(driver: Driver, driver_name: str) -> None:
    if driver_name not in ATOMIC:
        pytest.skip(f"{driver_name}: add/replace read then write (documented as not atomic)")
    winners: list[int] = []
    start = threading.Barrier(8)

    def adder(n: int) -> None:
        start.wait()
        if driver.add("once", str(n).encode(), 60):
            winners.append(n)

    def incrementer() -> None:
        for _ in range(25):
            while True:
                current = driver.get("counter")
                assert current is not MISSING
                if driver.replace("counter", current, str(int(current) + 1).encode(), 60):
                    break

    threads = [threading.Thread(target=adder, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert driver.get("once") == str(winners[0]).encode()

    driver.set("counter", b"0", 60)
    threads = [threading.Thread(target=incrementer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert driver.get("counter") == b"100"
