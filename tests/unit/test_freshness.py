"""Freshness policies (issue 21): stale_while_revalidate, stale_if_error, early_refresh, on every driver, sync
and async, and the guarantee that none of them serves a value a write invalidated."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates
from cachekit._freshness import record_of, sibling
from cachekit.errors import ConfigurationError
from tests.conftest import FakeClock

DRIVERS = ["memory", "memory-objects", "filesystem", "redis", "s3", "tiered"]
TTL, WINDOW = 60.0, 120.0


class Source:
    """A source of versioned records: each load returns the next version; ``fail`` makes loads raise."""

    def __init__(self) -> None:
        self.version = 1
        self.calls = 0
        self.fail = False
        self.gate: threading.Event | None = None

    def load(self, id: str) -> dict[str, Any]:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise RuntimeError("the database is down")
        return {"id": id, "version": self.version}


def _cache(name: str, clock: FakeClock, tmp: Path, request: pytest.FixtureRequest, **options: Any) -> Cache:
    ns = f"fresh-{uuid.uuid4().hex[:8]}"
    if name == "memory":
        return Cache("memory", namespace=ns, clock=clock, **options)
    if name == "memory-objects":
        return Cache("memory", namespace=ns, clock=clock, config={"store": "objects"}, **options)
    if name == "filesystem":
        return Cache("filesystem", namespace=ns, clock=clock, config={"directory": str(tmp / "fs")}, **options)
    if name == "redis":
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        return Cache("redis", namespace=ns, clock=clock, config={"url": url, "key_prefix": prefix}, **options)
    if name == "s3":
        bucket, client = request.getfixturevalue("s3_bucket"), request.getfixturevalue("s3_client")
        return Cache("s3", namespace=ns, clock=clock, config={"bucket": bucket, "client": client}, **options)
    if name == "tiered":
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        tiers = [{"driver": "memory"}, {"driver": "redis", "config": {"url": url, "key_prefix": prefix}}]
        return Cache(namespace=ns, clock=clock, drivers=tiers, **options)
    raise AssertionError(name)


@pytest.fixture(params=DRIVERS)
def make(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Iterator[Any]:
    made: list[Cache] = []

    def build(**options: Any) -> Cache:
        cache = _cache(str(request.param), clock, tmp_path, request, ttl=TTL, **options)
        made.append(cache)
        return cache

    yield build
    for cache in made:
        cache.close()


def _repo(cache: Cache, source: Source, **decorator: Any) -> Any:
    class Users:
        name = "users"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get", **decorator)
        def get(self, id: str) -> Any:
            return source.load(id)

        @invalidates(action="update")
        def update(self, id: str) -> None:
            source.version += 1

    return Users()


POLICY = {"get": {"stale_while_revalidate": WINDOW, "stale_if_error": WINDOW}}


def _counts(cache: Cache) -> dict[str, int]:
    return dict(cache.stats().details["freshness"]["users/get"])


# -- stale_while_revalidate ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["policy", "decorator"])
def test_stale_while_revalidate_serves_the_expired_value_and_refreshes_once(
    make: Any, clock: FakeClock, where: str
) -> None:
    source = Source()
    if where == "policy":
        cache = make(method_policies=POLICY)
        repo = _repo(cache, source)
    else:
        cache = make()
        repo = _repo(cache, source, stale_while_revalidate=WINDOW)
    assert repo.get("u1") == {"id": "u1", "version": 1}
    source.version = 2  # the source changed without a write through cachekit: only expiry can show it
    clock.advance(TTL + 1)
    source.gate = threading.Event()  # the refresh waits: the reads must not
    values = [repo.get("u1") for _ in range(20)]
    assert values == [{"id": "u1", "version": 1}] * 20
    source.gate.set()
    assert cache._fresh.drain(5)
    assert source.calls == 2  # one background refresh for 20 stale reads
    assert repo.get("u1") == {"id": "u1", "version": 2}
    counts = _counts(cache)
    # the refresh puts the stale value back as the plain entry while it loads: later reads are plain hits
    assert 1 <= counts["stale_served"] <= 20
    assert counts["refreshes_started"] == 1
    assert counts["refreshes_failed"] == 0


def test_past_the_window_a_read_loads_in_the_foreground(make: Any, clock: FakeClock) -> None:
    source = Source()
    cache = make(method_policies={"get": {"stale_while_revalidate": 10}})
    repo = _repo(cache, source)
    repo.get("u1")
    source.version = 2
    clock.advance(TTL + 11)
    assert repo.get("u1") == {"id": "u1", "version": 2}
    assert source.calls == 2
    assert "stale_served" not in cache.stats().details.get("freshness", {}).get("users/get", {})


def test_a_failed_background_refresh_is_counted_and_the_stale_value_kept(make: Any, clock: FakeClock,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    source = Source()
    cache = make(method_policies={"get": {"stale_while_revalidate": WINDOW}})
    repo = _repo(cache, source)
    repo.get("u1")
    clock.advance(TTL + 1)
    source.fail = True
    with caplog.at_level(logging.WARNING, logger="cachekit"):
        assert repo.get("u1")["version"] == 1
        assert cache._fresh.drain(5)
        assert repo.get("u1")["version"] == 1  # the stale value, put back for a while (twice the load time)
        clock.advance(1)
        assert repo.get("u1")["version"] == 1
        assert cache._fresh.drain(5)
    counts = _counts(cache)
    assert counts["refreshes_failed"] == 2
    assert counts["stale_served"] == 2
    assert sum("refresh of users/get failed" in r.getMessage() for r in caplog.records) == 1  # logged once


# -- stale_if_error ------------------------------------------------------------------------------------------------


def test_stale_if_error_serves_the_expired_value_when_the_source_raises(
    make: Any, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    source = Source()
    cache = make(method_policies={"get": {"stale_if_error": 30}})
    repo = _repo(cache, source)
    repo.get("u1")
    clock.advance(TTL + 1)
    source.fail = True
    with caplog.at_level(logging.WARNING, logger="cachekit"):
        assert repo.get("u1") == {"id": "u1", "version": 1}
        assert repo.get("u1") == {"id": "u1", "version": 1}
    assert sum("load of users/get failed" in r.getMessage() for r in caplog.records) == 1
    assert _counts(cache)["stale_on_error"] == 2
    clock.advance(30)  # past the window: the error is the caller's
    with pytest.raises(RuntimeError, match="database is down"):
        repo.get("u1")
    source.fail = False
    assert repo.get("u1") == {"id": "u1", "version": 1}


def test_without_stale_if_error_a_failing_source_fails_the_read(make: Any, clock: FakeClock) -> None:
    source = Source()
    cache = make(method_policies={"get": {"stale_while_revalidate": 5}})
    repo = _repo(cache, source)
    repo.get("u1")
    clock.advance(TTL + 6)
    source.fail = True
    with pytest.raises(RuntimeError):
        repo.get("u1")


# -- the guarantee -------------------------------------------------------------------------------------------------


def test_no_policy_serves_a_value_a_write_invalidated(make: Any, clock: FakeClock) -> None:
    source = Source()
    cache = make(method_policies={"get": {"stale_while_revalidate": WINDOW, "stale_if_error": WINDOW,
                                          "early_refresh": True, "early_refresh_beta": 1e9}})
    repo = _repo(cache, source)
    assert repo.get("u1")["version"] == 1
    repo.update("u1")  # version 2 in the source, and a bump
    clock.advance(TTL + 1)  # the version-1 record is expired, within both windows, but invalidated
    source.fail = True
    with pytest.raises(RuntimeError):
        repo.get("u1")  # no stale fallback: the only record is under older generations
    source.fail = False
    assert repo.get("u1")["version"] == 2  # loaded in the foreground, not served stale
    counts = cache.stats().details.get("freshness", {}).get("users/get", {})
    assert counts.get("stale_served", 0) == 0
    assert counts.get("stale_on_error", 0) == 0


def test_a_process_without_the_policy_reads_the_same_entries(clock: FakeClock, tmp_path: Path) -> None:
    """The plain entry is the value under the read's key, as without the policy; the record is beside it."""
    plain = Cache("filesystem", namespace="shared", clock=clock, ttl=TTL, config={"directory": str(tmp_path)})
    fresh = Cache("filesystem", namespace="shared", clock=clock, ttl=TTL, config={"directory": str(tmp_path)},
                  method_policies=POLICY)
    try:
        source = Source()
        a, b = _repo(plain, source), _repo(fresh, source)
        key = b.get.cache_key("u1")
        assert a.get.cache_key("u1") == key
        assert b.get("u1") == {"id": "u1", "version": 1}
        assert a.get("u1") == {"id": "u1", "version": 1}
        assert source.calls == 1  # a hit of the entry the other process stored
        listed = fresh.keys()  # both current, listed with the reads
        assert sibling(key) in listed
        assert key in listed
        assert fresh.is_current(sibling(key))
    finally:
        plain.close()
        fresh.close()


def test_a_hit_never_looks_at_the_record(clock: FakeClock) -> None:
    """Policies on an action leave its hits alone: the plain entry answers, whatever is beside it."""
    cache = Cache("memory", clock=clock, ttl=TTL, method_policies=POLICY)
    source = Source()
    repo = _repo(cache, source)
    repo.get("u1")
    cache._write(sibling(repo.get.cache_key("u1")), "junk", TTL, None)
    errors = cache.errors
    assert repo.get("u1") == {"id": "u1", "version": 1}
    assert cache.errors == errors
    assert source.calls == 1


def test_a_record_that_is_not_one_is_dropped_and_loaded_again(clock: FakeClock) -> None:
    cache = Cache("memory", clock=clock, ttl=TTL, method_policies=POLICY)
    source = Source()
    repo = _repo(cache, source)
    key = repo.get.cache_key("u1")
    for junk in (["~cachekit-fresh/1", "soon", 0.0, 1], ["~cachekit-fresh/1", float("nan"), 0.0, 1], {"v": 1},
                 ["other", 1.0, 0.0, 1], ["~cachekit-fresh/1", -1.0, 0.0, 1], "~cachekit-fresh/1"):
        cache.delete(key)
        cache._write(sibling(key), junk, TTL, None)
        errors = cache.errors
        assert repo.get("u1") == {"id": "u1", "version": 1}
        assert cache.errors == errors + 1
        assert record_of(cache._quiet_read(sibling(key)))[2] == {"id": "u1", "version": 1}  # replaced by the load


# -- early refresh (XFetch) ----------------------------------------------------------------------------------------


def test_early_refresh_reloads_a_hot_entry_before_it_expires(make: Any, clock: FakeClock) -> None:
    source = Source()
    cache = make(method_policies={"get": {"early_refresh": True, "early_refresh_beta": 1e9}})
    repo = _repo(cache, source)
    original = source.load
    source.load = lambda id: (threading.Event().wait(0.002), original(id))[1]  # type: ignore[method-assign]
    repo.get("u1")
    source.version = 2
    clock.advance(TTL / 2)  # fresh, but delta * beta makes the XFetch test fire
    assert repo.get("u1")["version"] == 1  # the hit is served; the refresh runs behind it
    assert cache._fresh.drain(5)
    assert repo.get("u1")["version"] == 2
    assert _counts(cache)["early_refreshes"] >= 1


def test_early_refresh_with_a_small_beta_leaves_a_fresh_entry_alone(make: Any, clock: FakeClock) -> None:
    source = Source()
    cache = make(method_policies={"get": {"early_refresh": True, "early_refresh_beta": 1e-9}})
    repo = _repo(cache, source)
    repo.get("u1")
    clock.advance(TTL / 2)
    for _ in range(50):
        repo.get("u1")
    assert source.calls == 1


# -- async ---------------------------------------------------------------------------------------------------------


def test_async_stale_while_revalidate_and_stale_if_error(make: Any, clock: FakeClock) -> None:
    source = Source()
    cache = make(method_policies=POLICY)

    class Users:
        name = "users"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get")
        async def get(self, id: str) -> Any:
            await asyncio.sleep(30 if slow else 0.01)
            await loads_may_finish.wait()
            return source.load(id)

    repo = Users()
    loads_may_finish = asyncio.Event()
    loads_may_finish.set()

    async def run() -> None:
        assert (await repo.get("u1"))["version"] == 1
        source.version = 2
        clock.advance(TTL + 1)
        # The refresh is held until the ten reads are back: on a loaded machine a driver read in a worker thread can
        # otherwise outlast the refresh and (rightly) see the new version.
        loads_may_finish.clear()
        stale = await asyncio.gather(*(repo.get("u1") for _ in range(10)))
        assert [v["version"] for v in stale] == [1] * 10
        assert len(cache._fresh.tasks) == 1
        loads_may_finish.set()
        await cache._fresh.adrain(5)
        assert (await repo.get("u1"))["version"] == 2
        clock.advance(TTL + 1)
        source.fail = True
        source.version = 3
        clock.advance(WINDOW - 2)  # past nothing: within both windows, the refresh fails, stale served
        assert (await repo.get("u1"))["version"] == 2
        await cache._fresh.adrain(5)
        clock.advance(TTL + WINDOW)
        with pytest.raises(RuntimeError):
            await repo.get("u1")
        # a refresh still running at shutdown is awaited a while, then cancelled
        source.fail = False
        await repo.get("u1")
        clock.advance(TTL + 1)
        slow.append(True)
        await repo.get("u1")  # stale: its refresh sleeps
        assert len(cache._fresh.tasks) == 1
        await cache._fresh.adrain(0.05)
        assert not cache._fresh.tasks
        await cache.aclose()

    slow: list[bool] = []
    asyncio.run(run())
    counts = _counts(cache)
    assert counts["stale_served"] >= 3  # at least one per stale phase (reads during a refresh may hit its put-back)
    assert counts["refreshes_failed"] >= 1


# -- options -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", [
    {"stale_while_revalidate": -1}, {"stale_while_revalidate": "5"}, {"stale_if_error": float("inf")},
    {"early_refresh": 1}, {"early_refresh": True, "early_refresh_beta": 0}, {"early_refresh_beta": 2.0},
    {"stale_while_revalidate": True},
])
def test_wrong_values_raise_a_clear_error(option: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="method_policies\\['get'\\]"):
        Cache("memory", method_policies={"get": option})
    with pytest.raises(ConfigurationError, match="cached"):
        cached(action="get", **option)


def test_a_typed_return_with_a_freshness_policy_is_refused_at_decoration() -> None:
    import dataclasses

    @dataclasses.dataclass
    class User:
        id: str

    with pytest.raises(ConfigurationError, match="typed return"):
        @cached(action="get", stale_while_revalidate=5)
        def get(id: str) -> User:
            return User(id)


def test_the_plugin_takes_the_policies_as_method_policies() -> None:
    from cachekit.plugin import CachePlugin

    with pytest.raises(ConfigurationError, match="stale_while_revalidate"):
        CachePlugin(method_policies={"get": {"stale_while_revalidate": -5}})
    CachePlugin(method_policies={"get": {"stale_while_revalidate": 5, "stale_if_error": 60}})


# -- stats and metrics ---------------------------------------------------------------------------------------------


def _stale_workload(cache: Cache, clock: FakeClock) -> None:
    """1 stale read with 1 refresh that fails, then 1 read served on error, then 1 early refresh."""
    source = Source()
    repo = _repo(cache, source)
    repo.get("u1")
    clock.advance(TTL + 1)
    source.fail = True
    repo.get("u1")  # stale served, a refresh started (and failed)
    assert cache._fresh.drain(5)
    clock.advance(10)  # past stale_while_revalidate (5), within stale_if_error
    repo.get("u1")  # served on error


METRICS_POLICY = {"get": {"stale_while_revalidate": 5, "stale_if_error": 60}}


def test_prometheus_and_otel_export_the_freshness_counters(clock: FakeClock) -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    sdk_metrics = pytest.importorskip("opentelemetry.sdk.metrics")
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from prometheus_client.parser import text_string_to_metric_families

    import cachekit.metrics

    cachekit.metrics.disable()
    cachekit.metrics.reset()
    try:
        registry = prometheus_client.CollectorRegistry()
        cachekit.metrics.enable_prometheus(registry)
        reader = InMemoryMetricReader()
        cachekit.metrics.enable_otel(sdk_metrics.MeterProvider(metric_readers=[reader]))
        cache = Cache("memory", namespace="fresh-metrics", clock=clock, ttl=TTL, method_policies=METRICS_POLICY)
        _stale_workload(cache, clock)
        found = {}
        for family in text_string_to_metric_families(prometheus_client.generate_latest(registry).decode()):
            for sample in family.samples:
                if sample.labels.get("namespace") == "fresh-metrics":
                    found[(sample.name, sample.labels.get("action"))] = sample.value
        assert found[("cachekit_stale_served_total", "get")] == 1
        assert found[("cachekit_stale_on_error_total", "get")] == 1
        assert found[("cachekit_refreshes_started_total", "get")] == 1
        assert found[("cachekit_refreshes_failed_total", "get")] == 1
        assert found[("cachekit_early_refreshes_total", "get")] == 0
        data = reader.get_metrics_data()
        points = {
            (metric.name, point.attributes.get("action")): getattr(point, "value", None)
            for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics
            for point in metric.data.data_points if point.attributes.get("namespace") == "fresh-metrics"
        }
        assert points[("cachekit.stale.served", "get")] == 1
        assert points[("cachekit.stale.on_error", "get")] == 1
        assert points[("cachekit.refreshes.failed", "get")] == 1
        assert cache.stats().details["freshness"]["users/get"] == {
            "early_refreshes": 0, "refreshes_failed": 1, "refreshes_started": 1, "stale_on_error": 1,
            "stale_served": 1,
        }
    finally:
        cachekit.metrics.disable()
        cachekit.metrics.reset()


def test_the_fleet_totals_carry_the_freshness_counters(
    clock: FakeClock, redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cachekit stats --fleet`` sums what every process's policies did (published with its other counters)."""
    import json

    from cachekit._tools.cli import main
    from cachekit.fleet import read_fleet

    config = {"url": redis_url, "key_prefix": redis_prefix}
    cache = Cache("redis", namespace="fresh-fleet", clock=clock, ttl=TTL, config=config, publish_stats=True,
                  method_policies=METRICS_POLICY)
    try:
        _stale_workload(cache, clock)
        assert cache.stats_publisher is not None
        assert cache.stats_publisher.flush()
        (total,) = read_fleet(cache.driver, "fresh-fleet").namespaces()
        assert (total["stale_served"], total["stale_on_error"], total["refreshes_started"],
                total["refreshes_failed"], total["early_refreshes"]) == (1, 1, 1, 1, 0)
        capsys.readouterr()
        assert main(["stats", "--fleet", "--json", "--driver", "redis", "--config", json.dumps(config),
                     "--namespace", "fresh-fleet"]) == 0
        (shown,) = json.loads(capsys.readouterr().out)["namespaces"]
        assert shown["stale_served"] == 1
        assert shown["refreshes_failed"] == 1
    finally:
        cache.close()
