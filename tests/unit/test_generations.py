"""Invalidation by generations: writes bump counters instead of finding keys; failures keep this process safe."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from cachekit import Cache, Invalidation, cached, invalidates
from cachekit.drivers.memory import MemoryDriver
from cachekit.generations import GenerationStore, MemoryGenerations, store_for
from cachekit.generations.view import GenerationView
from cachekit.scopes import NAMESPACE_SCOPE
from tests.servers import wait_until


class CountingDriver(MemoryDriver):
    """A memory driver that counts the calls an invalidation must never make (scans and deletes)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.scans = 0

    def keys(self, prefix: str = "") -> list[str]:
        self.scans += 1
        return super().keys(prefix)

    def clear_many(self, prefixes: Any) -> int:
        self.scans += 1
        return super().clear_many(prefixes)

    def delete(self, key: str) -> bool:
        self.scans += 1
        return super().delete(key)


class FlakyStore(MemoryGenerations):
    """An in-process store that can be made to fail, as a shared backend would during an outage."""

    shared = True
    reads_in_process = False  # reads may fail: views keep copies, as of a shared backend

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.answers_probes = True
        self.bumps = 0
        self.probes = 0

    def probe(self) -> bool:
        self.probes += 1
        return self.answers_probes and not self.failing

    def read(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        if self.failing:
            raise ConnectionError("store down")
        return super().read(namespace, scopes)

    def bump(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        self.bumps += 1
        if self.failing:
            raise ConnectionError("store down")
        return super().bump(namespace, scopes)


class FlakyStoreDriver(MemoryDriver):
    def __init__(self) -> None:
        super().__init__(max_size=0)
        self.store = FlakyStore()

    def generation_store(self) -> GenerationStore:
        return self.store


class Users:
    name = "users"
    partitions = {"by_region": ["region"]}

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.rows = {f"u{i}": {"id": f"u{i}", "region": "eu" if i % 2 else "us", "v": 0} for i in range(10)}
        self.loads = 0

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any] | None:
        self.loads += 1
        row = self.rows.get(id)
        return dict(row) if row else None

    @cached(action="count")
    def count(self, *, partition: str | None = None, partition_values: dict[str, Any] | None = None) -> int:
        self.loads += 1
        rows = self.rows.values()
        if partition_values:
            rows = [r for r in rows if all(r.get(k) == v for k, v in partition_values.items())]
        return len(list(rows))

    @invalidates("update", before=lambda self, id, data: dict(self.rows[id]))
    def update(self, id: str, data: dict[str, Any]) -> dict[str, Any]:
        self.rows[id] = {**self.rows[id], **data}
        return dict(self.rows[id])


def test_a_write_neither_scans_nor_deletes_whatever_is_cached() -> None:
    driver = CountingDriver(max_size=0)
    users = Users(Cache(driver, namespace="gen"))
    for i in range(10):
        users.get(f"u{i}")
    users.count()
    users.count(partition="by_region", partition_values={"region": "eu"})
    driver.scans = 0
    users.update("u1", {"v": 1})
    assert driver.scans == 0
    assert users.get("u1")["v"] == 1


def test_a_write_invalidates_exactly_the_scopes_it_touches() -> None:
    users = Users(Cache("memory", namespace="gen", config={"max_size": 0}))
    eu = {"partition": "by_region", "partition_values": {"region": "eu"}}
    us = {"partition": "by_region", "partition_values": {"region": "us"}}
    for call in (lambda: users.get("u1"), lambda: users.get("u2"), users.count,
                 lambda: users.count(**eu), lambda: users.count(**us)):
        call()
    loads = users.loads
    users.update("u1", {"v": 2})  # u1 is in eu
    users.get("u2")
    users.count(**us)
    assert users.loads == loads  # other item, other partition: still hits
    users.get("u1")
    users.count(**eu)
    users.count()
    assert users.loads == loads + 3


def test_a_value_loaded_before_a_write_lands_where_no_later_read_looks() -> None:
    cache = Cache("memory", namespace="race", config={"max_size": 0})
    started, release = threading.Event(), threading.Event()
    rows = {"u1": 1}

    class Slow:
        name = "slow"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get")
        def get(self, id: str) -> int:
            value = rows[id]
            started.set()
            release.wait(5)  # the write happens while this load is in flight
            return value

        @invalidates("update")
        def update(self, id: str, value: int) -> None:
            rows[id] = value

    repo = Slow()
    reader = threading.Thread(target=repo.get, args=("u1",))
    reader.start()
    started.wait(5)
    repo.update("u1", 2)
    release.set()
    reader.join(5)
    assert repo.get("u1") == 2  # the old value was stored, under the old generation


def test_two_caches_on_one_driver_share_generations() -> None:
    driver = MemoryDriver(max_size=0)
    first, second = Users(Cache(driver, namespace="shared")), Users(Cache(driver, namespace="shared"))
    second.rows = first.rows
    assert second.get("u3")["v"] == 0
    first.update("u3", {"v": 7})
    assert second.get("u3")["v"] == 7
    assert store_for(driver) is store_for(driver)


def test_clear_all_bumps_the_namespace_and_invalidate_resource_the_resource() -> None:
    cache = Cache("memory", namespace="gen", config={"max_size": 0})
    users = Users(cache)
    users.get("u1")
    before = users.loads
    cache.invalidate_resource("users")
    users.get("u1")
    cache.clear()
    users.get("u1")
    assert users.loads == before + 2


def test_a_failed_bump_keeps_this_process_correct_and_is_retried() -> None:
    driver = FlakyStoreDriver()
    cache = Cache(driver, namespace="flaky", retry_delay=0)
    users = Users(cache)
    assert users.get("u1")["v"] == 0
    driver.store.failing = True
    users.update("u1", {"v": 1})  # the write succeeds; the bump cannot reach the store
    assert driver.store.bumps == 3  # retried, then kept pending
    assert cache.pending_invalidations
    assert users.get("u1")["v"] == 1  # a private generation: this process never serves what it invalidated
    driver.store.failing = False
    cache._gens.resumed()  # what the store's watcher does when it is back
    assert not cache.pending_invalidations
    assert users.get("u1")["v"] == 1


def test_pending_bumps_coalesce_and_collapse_to_whole_resources() -> None:
    store = FlakyStore()
    view = GenerationView(store, "ns", pending_limit=50, retry_interval=0)
    store.failing = True
    for i in range(40):
        view.bump(["users/agg", f"users/item/{i}"])
    assert len(view.pending) == 41  # the aggregates scope once
    for i in range(40, 400):
        view.bump([f"users/item/{i}", f"orders/item/{i}"])
    assert view.pending == {"users", "orders"}  # collapsed, bounded
    store.failing = False
    assert view.flush()
    assert not view.pending


def test_reads_keep_their_last_known_generations_while_the_store_is_unreachable() -> None:
    store = FlakyStore()
    view = GenerationView(store, "ns")
    template = view.template("ns/resource=users/action=get/abc", [NAMESPACE_SCOPE, "users", "users/item/abc"])
    key, _ = view.render(template)
    view.reset()  # e.g. a lost subscription: forget, but keep as the fallback
    store.failing = True
    assert view.render(template)[0] == key  # a memory tier in front of a dead store keeps serving
    store.failing = False


def test_private_generations_differ_from_every_shared_one() -> None:
    store = FlakyStore()
    view = GenerationView(store, "ns", retry_interval=0)
    template = view.template("base", [NAMESPACE_SCOPE, "users", "users/agg"])
    shared_key = view.render(template)[0]
    store.failing = True
    view.bump(["users/agg"])
    private_key = view.render(template)[0]
    assert private_key != shared_key
    assert "-" in private_key.split("@")[1]


@pytest.mark.parametrize("ttl", [None])
def test_ttl_none_is_refused_where_nothing_would_remove_orphans(ttl: Any, redis_url: str, redis_prefix: str) -> None:
    from cachekit.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="ttl=None"):
        Cache("redis", ttl=ttl, config={"url": redis_url, "key_prefix": redis_prefix})
    with pytest.raises(ConfigurationError, match="ttl=None"):
        Cache("redis", method_policies={"get": {"ttl": None}}, config={"url": redis_url, "key_prefix": redis_prefix})
    Cache("memory", ttl=None).close()  # bounded by max_size: fine
    redis_tier = {"driver": "redis", "ttl": 60, "config": {"url": redis_url, "key_prefix": redis_prefix}}
    tiers = [{"driver": "memory"}, redis_tier]
    Cache(drivers=tiers, ttl=None).close()  # the Redis tier's own ttl bounds it


def test_invalidate_returns_the_scopes_it_bumped() -> None:
    cache = Cache("memory", namespace="gen")
    inv = Invalidation("users", ids=["u1", "u2"], records=[{"region": "eu"}], partitions={"by_region": ["region"]},
                       records_complete=True)
    assert cache.invalidate(inv) == 4  # aggregates, two items, one partition value
    assert cache.stats().details["invalidations"] == 4


def test_a_pending_bump_is_retried_at_most_once_a_second(clock: Any) -> None:
    driver = FlakyStoreDriver()
    driver.store.answers_probes = False  # writes alone retry here (the background retrier: the next test)
    cache = Cache(driver, namespace="flaky", retry_delay=0, clock=clock)
    users = Users(cache)
    users.get("u1")
    driver.store.failing = True
    users.update("u1", {"v": 1})
    driver.store.failing = False
    bumps = driver.store.bumps
    users.update("u2", {"v": 1})  # within the retry interval: the pending bump waits, this one goes through
    assert driver.store.bumps == bumps + 1
    assert cache.pending_invalidations
    clock.advance(1.1)
    users.update("u3", {"v": 1})
    assert not cache.pending_invalidations  # retried first, then this write's own bump
    assert driver.store.bumps == bumps + 3
    assert [users.get(f"u{i}")["v"] for i in (1, 2, 3)] == [1, 1, 1]


def test_a_pending_bump_reaches_the_store_as_soon_as_it_answers_without_a_write(clock: Any) -> None:
    # Issue 23: other processes read a recovered backend at once, so a pending invalidation must not wait for this
    # process's next write past the retry interval (or the breaker's cool-down): a background retrier probes the
    # store and retries as soon as it answers. The clock is frozen: no retry interval ever passes.
    driver = FlakyStoreDriver()
    cache = Cache(driver, namespace="flaky", retry_delay=0, clock=clock)
    users = Users(cache)
    users.get("u1")
    driver.store.failing = True
    users.update("u1", {"v": 1})
    assert cache.pending_invalidations
    assert wait_until(lambda: driver.store.probes >= 2)  # probing while the store is down
    assert cache.pending_invalidations
    driver.store.failing = False
    assert wait_until(lambda: not cache.pending_invalidations), "the pending bump never reached the store"
    other = Cache(driver, namespace="flaky")  # another process's view of the same store and source
    reader = Users(other)
    reader.rows = users.rows
    assert reader.get("u1")["v"] == 1  # not the entry stored before the write
    probes = driver.store.probes
    assert wait_until(lambda: False, timeout=0.3) is False
    assert driver.store.probes == probes, "the retrier must end once nothing is pending"
    cache.close()
    other.close()


class _UnwatchedStore(MemoryGenerations):
    """A store whose changes nobody is told of; ``trusting`` says whether local copies may be used."""

    reads_in_process = False  # a shared backend's: views keep local copies
    trusting = True

    def trusted(self, namespace: str) -> bool:
        return self.trusting

    def change_silently(self, namespace: str, scope: str) -> None:
        self._values[(namespace, scope)] = self._values.get((namespace, scope), 0) + 1  # no listener told


@pytest.mark.parametrize("how", ["render", "arender", "render_local"])
def test_an_untrusted_store_is_asked_at_every_render_never_the_local_copies(how: str) -> None:
    import asyncio

    store = _UnwatchedStore()
    view = GenerationView(store, "ns")
    template = view.template("base", [NAMESPACE_SCOPE, "users"])
    known = view.render(template)[0]  # "users" is known locally now
    store.change_silently("ns", "users")  # another process's write, not heard (a lost subscription)
    assert view.render(template)[0] == known  # trusted: the local copy
    store.trusting = False
    if how == "render_local":
        assert view.render_local(template) is None  # it would have to ask the store
        return
    async def aread(namespace: str, scopes: Sequence[str]) -> list[int]:
        return store.read(namespace, scopes)

    store.aread = aread  # type: ignore[attr-defined]  # arender asks an async store
    fresh = view.render(template)[0] if how == "render" else asyncio.run(_arender(view, template))
    assert fresh != known
    assert fresh == "base@0.1"


async def _arender(view: GenerationView, template: Any) -> str:
    return (await view.arender(template))[0]
