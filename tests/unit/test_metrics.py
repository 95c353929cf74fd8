"""cachekit.metrics: a scripted workload, then exact numbers from a real Prometheus endpoint and a real OTel SDK."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

prometheus_client = pytest.importorskip("prometheus_client")
pytest.importorskip("opentelemetry.sdk.metrics")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

import cachekit.metrics  # noqa: E402
from cachekit import Cache, cached, invalidates  # noqa: E402
from cachekit._instrument import instrumentation_of  # noqa: E402
from cachekit.breaker import CircuitBreaker  # noqa: E402
from cachekit.drivers.memory import MemoryDriver  # noqa: E402
from cachekit.drivers.tiered import Tier, TieredDriver  # noqa: E402
from tests.servers import LOOPBACK, free_port  # noqa: E402


@pytest.fixture(autouse=True)
def _metrics_off() -> Iterator[None]:
    cachekit.metrics.disable()
    cachekit.metrics.reset()
    yield
    cachekit.metrics.disable()
    cachekit.metrics.reset()


class Users:
    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.loads = 0

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any]:
        self.loads += 1
        return {"id": id}

    @cached(action="count")
    def count(self) -> int:
        return 3

    @invalidates(action="update")
    def update(self, id: str) -> None:
        return None

# A namespace no other test uses: metrics aggregate every cache of one namespace label in the process.
SHOP = "metrics-test-shop"


def workload(cache: Cache) -> None:
    """3 gets, 1 count and 1 own entry in a 2-entry cache (3 evictions), 2 hits, 1 update, 1 corrupt read."""
    users = Users(cache)
    users.get("u1")
    users.get("u1")  # hit
    users.get("u2")
    users.get("u3")  # evicts u1
    users.count()  # evicts u2
    users.count()  # hit
    users.update("u3")  # bumps users/agg and users/item/u3: 2 scopes
    cache.driver.set(cache._full_key("own"), b"not an envelope", 60)
    assert cache.get("own") is None  # corrupt: an error and a miss of resource "", action ""


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def test_prometheus_endpoint_reports_the_workload_exactly() -> None:
    registry = prometheus_client.CollectorRegistry()
    cache = Cache(namespace=SHOP, config={"max_size": 2, "max_memory_bytes": 1 << 20})  # exists before enabling
    cachekit.metrics.enable_prometheus(registry)
    workload(cache)
    port = free_port()
    server, thread = prometheus_client.start_http_server(port, addr=LOOPBACK, registry=registry)
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    got = samples(text)
    get = labels(namespace=SHOP, resource="users", action="get", tier="memory")
    count = labels(namespace=SHOP, resource="users", action="count", tier="memory")
    own = labels(namespace=SHOP, resource="", action="", tier="memory")
    assert got[("cachekit_hits_total", get)] == 1
    assert got[("cachekit_misses_total", get)] == 3
    assert got[("cachekit_sets_total", get)] == 3
    assert got[("cachekit_hits_total", count)] == 1
    assert got[("cachekit_misses_total", count)] == 1
    assert got[("cachekit_errors_total", own)] == 1
    assert got[("cachekit_misses_total", own)] == 1
    assert got[("cachekit_errors_total", get)] == 0
    assert got[("cachekit_invalidations_total", labels(namespace=SHOP, resource="users"))] == 2
    where = labels(namespace=SHOP, tier="memory")
    assert got[("cachekit_evictions_total", where)] == 3
    assert got[("cachekit_memory_limit_bytes", where)] == 1 << 20
    assert got[("cachekit_memory_bytes", where)] == cache.driver.stats()["memory_usage_bytes"] > 0
    calls = {k: v for k, v in got.items()
             if k[0] == "cachekit_driver_call_seconds_count" and ("namespace", SHOP) in k[1]}
    assert calls == {  # memory gets are counted, not timed; sets are
        ("cachekit_driver_call_seconds_count", labels(namespace=SHOP, tier="memory", operation="set")): 4,
    }
    inf = ("cachekit_driver_call_seconds_bucket", labels(namespace=SHOP, tier="memory", operation="set", le="+Inf"))
    assert got[inf] == 4
    load = labels(namespace=SHOP, resource="users", action="get")
    assert got[("cachekit_load_seconds_count", load)] == 3
    assert got[("cachekit_load_seconds_sum", load)] > 0
    # no key, id or value in any label
    assert "u1" not in text
    assert "own" not in text.replace("unknown", "")


def otel_points(reader: InMemoryMetricReader) -> dict[tuple[str, frozenset[tuple[str, Any]]], Any]:
    found: dict[tuple[str, frozenset[tuple[str, Any]]], Any] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, frozenset(point.attributes.items()))
                    found[key] = point.count if hasattr(point, "bucket_counts") else point.value
    return found


def test_otel_in_memory_reader_reports_the_workload_exactly() -> None:
    reader = InMemoryMetricReader()
    cachekit.metrics.enable_otel(MeterProvider(metric_readers=[reader]))
    cache = Cache(namespace=SHOP, config={"max_size": 2})  # created after enabling
    workload(cache)
    got = otel_points(reader)
    get = labels(namespace=SHOP, resource="users", action="get", tier="memory")
    assert got[("cachekit.hits", get)] == 1
    assert got[("cachekit.misses", get)] == 3
    assert got[("cachekit.sets", get)] == 3
    assert got[("cachekit.errors", labels(namespace=SHOP, resource="", action="", tier="memory"))] == 1
    assert got[("cachekit.invalidations", labels(namespace=SHOP, resource="users"))] == 2
    assert got[("cachekit.evictions", labels(namespace=SHOP, tier="memory"))] == 3
    sets = {"namespace": SHOP, "tier": "memory", "operation": "set"}
    assert got[("cachekit.driver.call.duration.count", labels(**sets))] == 4
    assert got[("cachekit.driver.call.duration.bucket", labels(**sets, le="+Inf"))] == 4
    assert got[("cachekit.driver.call.duration.sum", labels(**sets))] > 0
    assert got[("cachekit.load.duration", labels(namespace=SHOP, resource="users", action="get"))] == 3
    Users(cache).get("u3")  # a miss: update("u3") invalidated it; cumulative counters go on counting
    again = otel_points(reader)
    assert again[("cachekit.misses", get)] == 4
    assert again[("cachekit.driver.call.duration.count", labels(**sets))] == 5
    assert again[("cachekit.load.duration", labels(namespace=SHOP, resource="users", action="get"))] == 4


def test_blocking_drivers_time_every_get(tmp_path: Path) -> None:
    registry = prometheus_client.CollectorRegistry()
    cachekit.metrics.enable_prometheus(registry)
    with Cache(driver="filesystem", namespace="disk", config={"directory": str(tmp_path)}) as cache:
        users = Users(cache)
        users.get("u1")
        users.get("u1")
        users.get("u2")
        got = samples(prometheus_client.generate_latest(registry).decode())
    gets = {"namespace": "disk", "tier": "filesystem", "operation": "get"}
    assert got[("cachekit_driver_call_seconds_count", labels(**gets))] == 3  # reads, not single-flight re-checks
    assert got[("cachekit_driver_call_seconds_bucket", labels(**gets, le="+Inf"))] == 3
    hits = labels(namespace="disk", resource="users", action="get", tier="filesystem")
    assert got[("cachekit_hits_total", hits)] == 1


def test_tiers_and_breakers_are_labelled() -> None:
    registry = prometheus_client.CollectorRegistry()
    cachekit.metrics.enable_prometheus(registry)
    l2_breaker = CircuitBreaker("test L2", failures=1, cooldown=60)
    cache = Cache(namespace="tiers", driver=TieredDriver([
        Tier(MemoryDriver(), ttl=60), Tier(MemoryDriver(max_memory_bytes=4096), breaker=l2_breaker),
    ]))
    users = Users(cache)
    users.get("u1")  # miss in both tiers
    users.get("u1")  # L1 hit
    cache.driver._tiers[0].driver.clear("")
    users.get("u1")  # L2 hit, promoted
    l2_breaker.record_failure(RuntimeError("down"), trip=True)
    got = samples(prometheus_client.generate_latest(registry).decode())
    base = {"namespace": "tiers", "resource": "users", "action": "get"}
    assert got[("cachekit_misses_total", labels(**base, tier=""))] == 1
    assert got[("cachekit_hits_total", labels(**base, tier="L1-memory"))] == 1
    assert got[("cachekit_hits_total", labels(**base, tier="L2-memory"))] == 1
    assert got[("cachekit_breaker_state", labels(namespace="tiers", tier="L2-memory"))] == 2
    assert got[("cachekit_breaker_state", labels(namespace="tiers", tier="L1-memory"))] == 0
    assert got[("cachekit_memory_limit_bytes", labels(namespace="tiers", tier="L2-memory"))] == 4096


def test_label_sets_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from cachekit import _series

    monkeypatch.setattr(_series, "MAX_LABEL_SETS", 3)
    registry = prometheus_client.CollectorRegistry()
    cachekit.metrics.enable_prometheus(registry)
    cache = Cache(namespace="many")
    for n in range(6):
        cache.get(cache.key_for("get", resource=f"r{n}", params={"id": "x"}))
    got = samples(prometheus_client.generate_latest(registry).decode())
    misses = {dict(k[1])["resource"]: v for k, v in got.items() if k[0] == "cachekit_misses_total"}
    assert misses == {"r0": 1, "r1": 1, "r2": 1, "other": 3}


def test_off_by_default_and_off_again_means_no_hooks() -> None:
    cache = Cache(namespace="plain")
    assert instrumentation_of(cache) is None
    assert cache._read.__module__ != "cachekit._instrument"
    cachekit.metrics.enable_prometheus(prometheus_client.CollectorRegistry())
    assert vars(cache)["_read"].__module__ == "cachekit._instrument"  # the one observation wrapper
    cachekit.metrics.disable()
    assert instrumentation_of(cache) is None
    assert not {"_load", "_write", "_bump", "_backend_failed"} & set(vars(cache))
    assert cache._read.__module__ == "cachekit.drivers.memory"  # the memory driver's own hit path again


def test_import_cachekit_imports_no_exporter() -> None:
    code = ("import sys, cachekit, cachekit.events; cachekit.Cache(namespace='x').get('k'); "
            "print(sorted(m for m in sys.modules if m.startswith(('prometheus_client', 'opentelemetry'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
