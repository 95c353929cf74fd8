"""Cache.on(...): the events, their fields, failing callbacks, unsubscribing, breakers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates
from cachekit._instrument import instrumentation_of, key_labels
from cachekit.breaker import CircuitBreaker
from cachekit.drivers.memory import MemoryDriver
from cachekit.drivers.tiered import Tier, TieredDriver
from cachekit.errors import ConfigurationError
from cachekit.events import CacheEvent, subscribe_all


class Users:
    name = "users"
    partitions = {"by_region": ["region"]}

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any]:
        return {"id": id}

    @cached(action="count")
    def count(self, partition: str | None = None, partition_values: dict[str, Any] | None = None) -> int:
        return 1

    @invalidates(action="update")
    def update(self, id: str) -> None:
        return None


def record(cache: Cache, *kinds: str) -> list[CacheEvent]:
    seen: list[CacheEvent] = []
    for kind in kinds:
        cache.on(kind, seen.append)
    return seen


def test_hit_miss_set_invalidate_carry_resource_action_tier_key_duration() -> None:
    cache = Cache(namespace="ev")
    seen = record(cache, "hit", "miss", "set", "invalidate")
    users = Users(cache)
    users.get("u1")
    users.get("u1")
    key = users.get.cache_key("u1")
    users.update("u1")
    assert [e.kind for e in seen] == ["miss", "set", "hit", "invalidate"]
    miss, stored, hit, invalidated = seen
    assert (hit.namespace, hit.resource, hit.action, hit.tier) == ("ev", "users", "get", "memory")
    assert hit.key == key == miss.key == stored.key
    assert hit.duration is not None
    assert hit.duration >= 0
    assert invalidated.resource == "users"
    assert invalidated.key is None
    assert "users/agg" in invalidated.scopes
    assert len(invalidated.scopes) == 3  # agg, the item, and the partition (records unknown)


def test_partition_values_never_become_the_action() -> None:
    cache = Cache(namespace="ev")
    seen = record(cache, "miss")
    Users(cache).count(partition="by_region", partition_values={"region": "action=x"})
    assert (seen[0].resource, seen[0].action) == ("users", "count")
    assert key_labels("other/resource=users/action=get/x@1", "ev") == ("", "")
    assert key_labels("ev/mine", "ev") == ("", "")


def test_a_callback_that_raises_is_logged_once_and_never_fails_the_read(caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache(namespace="ev")

    def broken(event: CacheEvent) -> None:
        raise ValueError("boom")

    cache.on("hit", broken)
    cache.on("miss", broken)
    users = Users(cache)
    with caplog.at_level(logging.WARNING, logger="cachekit"):
        for _ in range(5):
            assert users.get("u1") == {"id": "u1"}
    lines = [r.getMessage() for r in caplog.records if "event callback" in r.getMessage()]
    assert len(lines) == 2  # one per (event, callback, error) per interval
    assert "ValueError: boom" in lines[0]


def test_unsubscribe_removes_the_hooks_when_nobody_listens() -> None:
    cache = Cache(namespace="ev")
    seen: list[CacheEvent] = []
    with cache.on("miss", seen.append) as handle:
        assert instrumentation_of(cache) is not None
        cache.get("a")
    handle.unsubscribe()  # twice is harmless
    cache.get("b")
    assert [e.key for e in seen] == ["ev/a"]
    assert instrumentation_of(cache) is None
    assert cache._read.__module__ == "cachekit.drivers.memory"  # the memory driver's own hit path again


def test_unknown_event_or_callback_is_refused_with_the_list() -> None:
    cache = Cache(namespace="ev")
    with pytest.raises(ConfigurationError, match="hit, miss, set, invalidate, error, breaker"):
        cache.on("hits", print)
    with pytest.raises(ConfigurationError, match="callable"):
        cache.on("hit", "not callable")  # type: ignore[arg-type]


def test_errors_are_events_then_misses() -> None:
    cache = Cache(namespace="ev")
    seen = record(cache, "error", "miss")
    cache.driver.set("ev/k", b"garbage", 60)
    assert cache.get("k") is None
    assert [e.kind for e in seen] == ["error", "miss"]
    assert type(seen[0].error).__name__ == "CorruptEntryError"


def test_breaker_events_on_tier_state_changes() -> None:
    clock = [0.0]
    breaker = CircuitBreaker("L2 under test", failures=1, cooldown=1.0, clock=lambda: clock[0])
    cache = Cache(namespace="ev", driver=TieredDriver([Tier(MemoryDriver()), Tier(MemoryDriver(), breaker=breaker)]))
    seen = record(cache, "breaker")
    breaker.record_failure(RuntimeError("down"), trip=True)
    clock[0] = 2.0
    probe = breaker.enter()
    breaker.exit(probe)
    assert [(e.tier, e.previous, e.state) for e in seen] == [
        ("L2-memory", "closed", "open"), ("L2-memory", "open", "half-open"), ("L2-memory", "half-open", "closed"),
    ]
    assert seen[0].breaker == "L2 under test"


def test_subscribe_all_reaches_existing_and_new_caches() -> None:
    before = Cache(namespace="one")
    seen: list[CacheEvent] = []
    with subscribe_all("miss", seen.append):
        after = Cache(namespace="two")
        before.get("x")
        after.get("y")
    before.get("z")
    assert [e.namespace for e in seen] == ["one", "two"]
    assert instrumentation_of(before) is None
    assert instrumentation_of(after) is None


def test_async_reads_emit_events_too() -> None:
    cache = Cache(namespace="ev")
    seen = record(cache, "hit", "miss")

    class Async:
        name = "things"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get")
        async def get(self, id: str) -> str:
            return id

    async def twice() -> list[str]:
        repo = Async()
        return [await repo.get("a"), await repo.get("a")]

    assert asyncio.run(twice()) == ["a", "a"]
    assert [(e.kind, e.resource) for e in seen] == [("miss", "things"), ("hit", "things")]
