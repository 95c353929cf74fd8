"""Prometheus and OpenTelemetry metrics of every :class:`~cachekit.Cache` of the process; off by default.

E.g.::

    import cachekit.metrics
    cachekit.metrics.enable_prometheus()          # into prometheus_client's default REGISTRY
    cachekit.metrics.enable_otel()                # through the global OpenTelemetry MeterProvider

Both apply to the caches that exist and to those created later. The hooks they install count into plain Python
integers and lists (:mod:`cachekit._series`); the exporters read those when scraped or collected. ``import
cachekit`` imports neither prometheus_client nor opentelemetry; install the extras ``cachekit-orm[prometheus]``
or ``cachekit-orm[otel]``.

Metrics (Prometheus names; OpenTelemetry uses the dotted names in brackets):

============================================  ================================  ======================================
``cachekit_hits_total`` [cachekit.hits]        namespace, resource, action, tier  reads served by the cache
``cachekit_misses_total`` [cachekit.misses]    namespace, resource, action, tier  reads that went to the source
``cachekit_sets_total`` [cachekit.sets]        namespace, resource, action, tier  entries stored
``cachekit_errors_total`` [cachekit.errors]    namespace, resource, action, tier  driver/codec failures (failed open)
``cachekit_invalidations_total``               namespace, resource                scopes bumped by writes
``cachekit_evictions_total``                   namespace, tier                    entries evicted (memory driver/tiers)
``cachekit_driver_call_seconds``               namespace, tier, operation         histogram: get (read) / set (write)
``cachekit_load_seconds``                      namespace, resource, action        histogram: miss to value (loader)
``cachekit_breaker_state``                     namespace, tier                    0 closed, 1 half-open, 2 open
``cachekit_memory_bytes``                      namespace, tier                    bytes held (memory driver/tiers)
``cachekit_memory_limit_bytes``                namespace, tier                    its limit (absent when unlimited)
``cachekit_stale_served_total``                namespace, resource, action        expired values served (revalidating)
``cachekit_stale_on_error_total``              namespace, resource, action        expired values served (source failed)
``cachekit_refreshes_started_total``           namespace, resource, action        background refreshes started
``cachekit_refreshes_failed_total``            namespace, resource, action        background refreshes that raised
``cachekit_early_refreshes_total``             namespace, resource, action        refreshes started early (XFetch)
============================================  ================================  ======================================

The last five count what the freshness policies did (:mod:`cachekit._freshness`; OpenTelemetry:
``cachekit.stale.served`` ...); they are read from the caches at collection, nothing is hooked for them.

``tier`` is the driver's name (``memory``) or, for a multi-tier cache, the tier that served a hit
(``L1-memory``; misses have ``tier=""``). No key, id or value is ever a label; resource/action pairs are capped
per namespace (see :data:`cachekit._series.MAX_LABEL_SETS`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

from . import events
from ._series import AGGREGATES, LATENCY_BUCKETS, Labels, Sink, Timings
from .breaker import CLOSED, HALF_OPEN, OPEN
from .errors import ConfigurationError

__all__ = ["COUNTERS", "disable", "enable_otel", "enable_prometheus", "gauges", "reset"]

#: The counters: (name without ``_total``, help text, attribute of :class:`cachekit._series.Counters`).
COUNTERS = (
    ("cachekit_hits", "Cache reads served by the cache", "hits"),
    ("cachekit_misses", "Cache reads that went to the source", "misses"),
    ("cachekit_sets", "Entries stored", "sets"),
    ("cachekit_errors", "Driver or codec failures (reads failed open)", "errors"),
)
COUNTER_LABELS = ("namespace", "resource", "action", "tier")
_BREAKER_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
#: Freshness counters (issue 21): (name without ``_total``, help text, field of ``_freshness.FreshCounts``).
FRESHNESS_COUNTERS = (
    ("cachekit_stale_served", "Expired values served while one refresh reloads them", "stale_served"),
    ("cachekit_stale_on_error", "Expired values served because the source raised", "stale_on_error"),
    ("cachekit_refreshes_started", "Background refreshes started", "refreshes_started"),
    ("cachekit_refreshes_failed", "Background refreshes whose source raised", "refreshes_failed"),
    ("cachekit_early_refreshes", "Refreshes started before expiry (XFetch)", "early_refreshes"),
)
FRESHNESS_LABELS = ("namespace", "resource", "action")
_lock = threading.Lock()
_prometheus: dict[int, tuple[Any, Any]] = {}  # id(registry) -> (registry, collector)
_otel_sinks: list[Sink] = []
_otel_providers: set[int] = set()


def _missing_extra(package: str, extra: str, exc: ImportError) -> ConfigurationError:
    return ConfigurationError(
        f"cachekit metrics need {package}, which is not installed ({exc}); pip install 'cachekit-orm[{extra}]'"
    )


# -- what both exporters read ------------------------------------------------------------------------------


def gauges() -> dict[str, dict[tuple[str, str], float]]:
    """``{"breaker_state" | "memory_bytes" | "memory_limit_bytes" | "evictions": {(namespace, tier): value}}``.

    Read from the hooked caches at collection time: breakers of every driver, memory and evictions of the
    drivers that keep them in the process (memory, also as a tier; network drivers are not asked).
    """
    found: dict[str, dict[tuple[str, str], float]] = {
        "breaker_state": {}, "memory_bytes": {}, "memory_limit_bytes": {}, "evictions": {},
    }
    for cache, inst in events.hooked_caches():
        for tier, breaker in inst.breakers():
            where = (cache.namespace, tier)
            value = _BREAKER_VALUES.get(breaker.state, 2)
            found["breaker_state"][where] = max(value, found["breaker_state"].get(where, 0))
        tiers = [(tier.name, tier.driver) for tier in inst.tiers] or [(inst.tier_name, cache.driver)]
        for tier, driver in tiers:
            if driver.blocking:
                continue
            try:
                stats = driver.stats()
            except Exception:
                continue
            where = (cache.namespace, tier)
            for name, field in (("evictions", "evictions"), ("memory_bytes", "memory_usage_bytes"),
                                ("memory_limit_bytes", "max_memory_bytes")):
                value = stats.get(field)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    found[name][where] = found[name].get(where, 0) + value
    return found


def freshness_counts() -> list[tuple[tuple[str, str, str], Any]]:
    """``((namespace, resource, action), FreshCounts)`` of every hooked cache with freshness policies."""
    found = []
    for cache, _ in events.hooked_caches():
        fresh = getattr(cache, "_fresh", None)  # a Cache's FreshState (cachekit._freshness)
        for (resource, action), counts in list(fresh.counts.items()) if fresh is not None else ():
            found.append(((cache.namespace, resource, action), counts))
    return found


def _histograms() -> Iterator[tuple[str, str, tuple[str, ...], list[Timings]]]:
    AGGREGATES.fold_all()  # series made by hooks that never timed anything (memory gets) are left out
    yield ("cachekit_driver_call_seconds", "Driver call duration (get: read and decode; set: encode and store)",
           ("namespace", "tier", "operation"), [s for s in list(AGGREGATES.calls.values()) if s.count])
    yield ("cachekit_load_seconds", "Time from a miss to its value (the loader, or waiting for it)",
           ("namespace", "resource", "action"), [s for s in list(AGGREGATES.loads.values()) if s.count])


# -- Prometheus --------------------------------------------------------------------------------------------


class _PrometheusCollector:
    """A prometheus_client collector reading :data:`AGGREGATES` and :func:`gauges` at scrape time."""

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        counters = list(AGGREGATES.counters.values())
        for name, documentation, field in COUNTERS:
            family = CounterMetricFamily(name, documentation, labels=COUNTER_LABELS)
            for counted in counters:
                family.add_metric(list(counted.labels), getattr(counted, field))
            yield family
        family = CounterMetricFamily(
            "cachekit_invalidations", "Invalidation scopes bumped by writes", labels=("namespace", "resource")
        )
        for labels, count in list(AGGREGATES.invalidations.items()):
            family.add_metric(list(labels), count)
        yield family
        fresh = freshness_counts()
        for name, documentation, field in FRESHNESS_COUNTERS:
            family = CounterMetricFamily(name, documentation, labels=FRESHNESS_LABELS)
            for labels, counts in fresh:
                family.add_metric(list(labels), getattr(counts, field))
            yield family
        for name, documentation, labels, series_list in _histograms():
            histogram = HistogramMetricFamily(name, documentation, labels=labels)
            for series in series_list:
                histogram.add_metric(list(series.labels), _cumulative(series), sum_value=series.total)
            yield histogram
        found = gauges()
        family = CounterMetricFamily(
            "cachekit_evictions", "Entries evicted by the driver", labels=("namespace", "tier")
        )
        for where, value in found["evictions"].items():
            family.add_metric(list(where), value)
        yield family
        for name, key, documentation in (
            ("cachekit_breaker_state", "breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open"),
            ("cachekit_memory_bytes", "memory_bytes", "Bytes held by the in-process driver"),
            ("cachekit_memory_limit_bytes", "memory_limit_bytes", "The in-process driver's memory limit"),
        ):
            gauge = GaugeMetricFamily(name, documentation, labels=("namespace", "tier"))
            for where, value in found[key].items():
                gauge.add_metric(list(where), value)
            yield gauge


def _cumulative(series: Timings) -> list[tuple[str, float]]:
    buckets, running = [], 0
    for bound, count in zip(LATENCY_BUCKETS, series.buckets, strict=False):
        running += count
        buckets.append((repr(float(bound)), float(running)))
    buckets.append(("+Inf", float(series.count)))
    return buckets


def enable_prometheus(registry: Any = None) -> None:
    """Export cachekit's metrics to a prometheus_client registry (default: ``prometheus_client.REGISTRY``).

    Serve them as usual, e.g. ``prometheus_client.start_http_server(9100)``. Calling it again for the same
    registry does nothing.
    """
    try:
        import prometheus_client
    except ImportError as exc:
        raise _missing_extra("prometheus_client", "prometheus", exc) from exc
    target = prometheus_client.REGISTRY if registry is None else registry
    with _lock:
        if id(target) not in _prometheus:
            collector = _PrometheusCollector()
            target.register(collector)
            _prometheus[id(target)] = (target, collector)
    events.set_metrics(True)


# -- OpenTelemetry -----------------------------------------------------------------------------------------


def enable_otel(meter_provider: Any = None) -> None:
    """Export cachekit's metrics through an OpenTelemetry ``MeterProvider`` (default: the global one).

    Counters and gauges are observable instruments read at collection; the two histograms are recorded in
    batches, folded before every collection.
    """
    try:
        from opentelemetry import metrics as otel_metrics
        from opentelemetry.metrics import CallbackOptions, Observation
    except ImportError as exc:
        raise _missing_extra("opentelemetry-api", "otel", exc) from exc
    provider = meter_provider or otel_metrics.get_meter_provider()
    with _lock:
        if id(provider) in _otel_providers:
            events.set_metrics(True)
            return
        _otel_providers.add(id(provider))
    meter = provider.get_meter("cachekit")

    def fold(_: CallbackOptions) -> Iterable[Observation]:  # registered first: runs before the others
        AGGREGATES.fold_all()
        return [Observation(len(events.hooked_caches()))]

    meter.create_observable_gauge("cachekit.caches", callbacks=[fold], description="Caches observed")
    for name, documentation, field in COUNTERS:
        meter.create_observable_counter(
            name.replace("_", "."), callbacks=[_counter_callback(field, Observation)], description=documentation
        )

    def invalidations(_: CallbackOptions) -> Iterable[Observation]:
        counts = list(AGGREGATES.invalidations.items())
        return [Observation(n, {"namespace": ns, "resource": r}) for (ns, r), n in counts]

    meter.create_observable_counter("cachekit.invalidations", callbacks=[invalidations])
    for name, documentation, field in FRESHNESS_COUNTERS:
        meter.create_observable_counter(name.replace("_", ".").replace(".on.", ".on_"),
                                        callbacks=[_freshness_callback(field, Observation)], description=documentation)
    for name, key, kind in (("cachekit.evictions", "evictions", "counter"), ("cachekit.breaker.state",
                            "breaker_state", "gauge"), ("cachekit.memory.usage", "memory_bytes", "gauge"),
                            ("cachekit.memory.limit", "memory_limit_bytes", "gauge")):
        create = meter.create_observable_counter if kind == "counter" else meter.create_observable_gauge
        create(name, callbacks=[_gauge_callback(key, Observation)])
    _driver_call_buckets(meter, Observation)
    load = meter.create_histogram("cachekit.load.duration", unit="s", description="Time from a miss to its value",
                                  explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS))

    def sink(name: str, labels: Labels, batch: list[float]) -> None:
        if name != "load":
            return
        attributes = dict(zip(("namespace", "resource", "action"), labels, strict=True))
        for seconds in batch:
            load.record(seconds, attributes)

    with _lock:
        _otel_sinks.append(sink)
        AGGREGATES.sinks.append(sink)
    events.set_metrics(True)


def _driver_call_buckets(meter: Any, observation: Any) -> None:
    """Driver call durations as three observable counters (``.count``, ``.sum``, ``.bucket`` by ``le``).

    Every hit is timed, and an OpenTelemetry SDK ``Histogram.record`` costs tens of microseconds in Python, more
    than the hit itself; so these durations are bucketed by cachekit (the buckets of :data:`LATENCY_BUCKETS`,
    cumulative like Prometheus's) and read at collection. Loads, one per miss, are a real OTel histogram.
    """

    def read(field: str) -> Any:
        def callback(_: Any) -> Iterable[Any]:
            found = []
            for series in list(AGGREGATES.calls.values()):
                attributes = dict(zip(("namespace", "tier", "operation"), series.labels, strict=True))
                if field == "count":
                    found.append(observation(series.count, attributes))
                elif field == "sum":
                    found.append(observation(series.total, attributes))
                else:
                    for bound, count in _cumulative(series):
                        found.append(observation(count, {**attributes, "le": bound}))
            return found

        return callback

    for field in ("count", "sum", "bucket"):
        meter.create_observable_counter(f"cachekit.driver.call.duration.{field}", callbacks=[read(field)],
                                        unit="s" if field == "sum" else "1")


def _counter_callback(field: str, observation: Any) -> Any:
    def callback(_: Any) -> Iterable[Any]:
        return [observation(getattr(s, field), dict(zip(COUNTER_LABELS, s.labels, strict=True)))
                for s in list(AGGREGATES.counters.values())]

    return callback


def _freshness_callback(field: str, observation: Any) -> Any:
    def callback(_: Any) -> Iterable[Any]:
        return [observation(getattr(counts, field), dict(zip(FRESHNESS_LABELS, labels, strict=True)))
                for labels, counts in freshness_counts()]

    return callback


def _gauge_callback(key: str, observation: Any) -> Any:
    def callback(_: Any) -> Iterable[Any]:
        return [observation(value, {"namespace": ns, "tier": tier}) for (ns, tier), value in gauges()[key].items()]

    return callback


# -- off ---------------------------------------------------------------------------------------------------


def disable() -> None:
    """Stop exporting (collectors unregistered, OpenTelemetry sinks dropped) and remove the metric hooks."""
    with _lock:
        for registry, collector in _prometheus.values():
            registry.unregister(collector)
        _prometheus.clear()
        for sink in _otel_sinks:
            if sink in AGGREGATES.sinks:
                AGGREGATES.sinks.remove(sink)
        _otel_sinks.clear()
        _otel_providers.clear()
    events.set_metrics(False)


def reset() -> None:
    """Zero every cachekit series (for tests); hooked caches start counting afresh."""
    AGGREGATES.reset()
    events.reinstall()
