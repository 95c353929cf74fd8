"""Fleet-wide stats: every process publishes its counters to the shared backend, ``cachekit stats --fleet`` sums them.

A :class:`~cachekit.Cache` built with ``publish_stats=True`` (every 10 s) or ``publish_stats=SECONDS`` counts its
reads per resource and action (the hooks of :mod:`cachekit._instrument`, as metrics do) and a background thread
writes one small record per process and namespace to the cache's shared backend, under
``~stats/{namespace}/{host}:{pid}:{token}``, with a TTL of three intervals: a process that died vanishes from the
fleet within that time, one that closes its cache (or exits) publishes a last time first. Nothing is published on
the read path. A memory cache lives in one process and has no fleet (``publish_stats`` there warns and does nothing);
a multi-tier cache publishes to its most widely shared tier (Redis, S3, or a directory shared on the host).

E.g.::

    cache = Cache(driver="redis", namespace="app", publish_stats=10,
                  config={"url": "redis://127.0.0.1:6379/0"})
    ...
    fleet = read_fleet(cache.driver, "app")      # what every process published, summed
    fleet.as_dict()["namespaces"][0]["hit_rate"]

and on the command line ``cachekit stats --fleet --driver redis --config '{"url": ...}' [--watch] [--json]``.

Records are untrusted input when read back (another process, or anyone with access to the backend, wrote them):
each is refused past :data:`MAX_RECORD_BYTES` before parsing, and :func:`parse_record` checks every field,
raising :class:`~cachekit.errors.CorruptEntryError` for anything else; :func:`read_fleet` lists such records
as ``invalid`` and sums the others.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import re
import secrets
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ._logging import log_once_per_interval
from ._redact import redact
from ._series import AGGREGATES
from .drivers.base import HOST, NETWORK, Driver
from .errors import ConfigurationError, CorruptEntryError

__all__ = [
    "DEFAULT_INTERVAL", "FLEET_PREFIX", "MAX_NAME", "MAX_RECORDS", "MAX_RECORD_BYTES", "MAX_ROWS", "ROW_COUNTERS",
    "TOTALS", "Fleet", "FleetRecord", "StatsPublisher", "check_interval", "fleet_driver", "parse_record", "read_fleet",
    "start_publishing", "stop_publishing",
]

#: Where records live in the backend (namespaces cannot start with ``~``, so no namespace's keys are here).
FLEET_PREFIX: Final = "~stats/"
#: Seconds between two records of a process when ``publish_stats=True``.
DEFAULT_INTERVAL: Final = 10.0
#: A record larger than this is refused unread.
MAX_RECORD_BYTES: Final = 256 * 1024
#: Resource/action rows one record carries at most (the busiest; the rest are summed as ``other``/``other``).
MAX_ROWS: Final = 256
#: Records :func:`read_fleet` reads at most (the keys past it are counted as ``skipped``).
MAX_RECORDS: Final = 10_000
#: Characters of a resource, action, host or process name kept in a record.
MAX_NAME: Final = 100
#: The counters of a namespace's totals, as :meth:`Cache.stats` has them.
TOTALS: Final = ("hits", "misses", "sets", "deletes", "errors", "invalidations",
                 # issue 21: what the freshness policies did (0 in records of processes without them)
                 "stale_served", "stale_on_error", "refreshes_started", "refreshes_failed", "early_refreshes")
_FRESHNESS_TOTALS: Final = TOTALS[6:]
#: The counters of a resource/action row (the hooks' counters).
ROW_COUNTERS: Final = ("hits", "misses", "sets", "errors")
_VERSION = 1
_MAX_COUNT = 2**63 - 1
_MAX_TTL = 86400.0

logger = logging.getLogger("cachekit")


class Cache(Protocol):
    """What publishing reads of a :class:`~cachekit.Cache` (a protocol: this module does not import the cache,
    which imports it)."""

    namespace: str
    driver: Driver
    stats_enabled: bool
    hits: int
    misses: int
    sets: int
    deletes: int
    errors: int
    invalidations: int

    def _fleet_counting(self, on: bool) -> None:
        """Keep (or stop keeping) the per resource/action read counters (:mod:`cachekit.events`)."""


def fleet_driver(driver: Driver) -> Driver | None:
    """The driver that ``driver``'s processes share (a multi-tier driver's most shared tier); ``None`` for a
    driver whose entries live in one process (memory, null): such a cache has no fleet."""
    tiers = getattr(driver, "tiers", None)
    candidates = [tier.driver for tier in tiers] if tiers else [driver]
    ranks = {NETWORK: 0, HOST: 1}
    shared = [each for each in candidates if each.sharing in ranks]
    return min(shared, key=lambda each: ranks[str(each.sharing)]) if shared else None


def _process_id() -> tuple[str, str, int]:
    """``(host:pid:token, host, pid)``: the token keeps two containers that share a pid and a hostname apart."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:MAX_NAME] or "host"
    pid = os.getpid()
    return f"{host}:{pid}:{secrets.token_hex(4)}", host, pid


# -- records -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetRecord:
    """One process's counters for one namespace, as it last published them.

    ``rows`` are ``(resource, action, hits, misses, sets, errors)``; ``at`` is the publisher's wall clock.
    """

    namespace: str
    process: str
    host: str
    pid: int
    at: float
    ttl: float
    driver: str
    totals: Mapping[str, int]
    rows: tuple[tuple[str, str, int, int, int, int], ...]

    def expired(self, now: float) -> bool:
        """Whether the record outlived its TTL (a driver without native expiry, S3, still returns it)."""
        return self.at + self.ttl < now


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME or not value.isprintable():
        raise CorruptEntryError(f"{what} must be a printable string of at most {MAX_NAME} characters")
    return value


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise CorruptEntryError(f"{what} must be a whole number >= 0; got {str(value)[:40]!r}")
    return value


def _seconds(value: object, what: str, upper: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CorruptEntryError(f"{what} must be a finite number of seconds")
    if not 0 <= value <= upper:
        raise CorruptEntryError(f"{what} must be between 0 and {upper:g} seconds")
    return float(value)


def parse_record(blob: object, key: str) -> FleetRecord:
    """Check and decode one stored record (untrusted input).

    :raises CorruptEntryError: anything but a record this module wrote: too large, not JSON, a field missing or
        of the wrong type or range, or a namespace other than the one its key names.
    """
    where = f"fleet stats record {key[:200]!r}"
    try:
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise CorruptEntryError(f"a {type(blob).__name__}, not bytes")
        if len(blob) > MAX_RECORD_BYTES:
            raise CorruptEntryError(f"{len(blob)} bytes, over the {MAX_RECORD_BYTES} a record may have")
        try:
            data = json.loads(bytes(blob).decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise CorruptEntryError(f"not a JSON record ({type(exc).__name__})") from None
        if not isinstance(data, dict) or data.get("v") != _VERSION:
            raise CorruptEntryError(f"not a version {_VERSION} record object")
        namespace = _name(data.get("namespace"), "namespace")
        rest = key[len(FLEET_PREFIX) :] if key.startswith(FLEET_PREFIX) else ""
        if rest.partition("/")[0] != namespace:
            raise CorruptEntryError(f"its namespace {namespace!r} is not the one its key names")
        totals_in = data.get("totals")
        rows_in = data.get("rows")
        if not isinstance(totals_in, dict) or not isinstance(rows_in, list) or len(rows_in) > MAX_ROWS + 1:
            raise CorruptEntryError(f"totals must be an object and rows a list of at most {MAX_ROWS + 1}")
        totals = {name: _count(totals_in.get(name, 0), f"totals.{name}") for name in TOTALS}
        rows = []
        for index, row in enumerate(rows_in):
            if not isinstance(row, list) or len(row) != 2 + len(ROW_COUNTERS):
                raise CorruptEntryError(f"rows[{index}] must be [resource, action, {', '.join(ROW_COUNTERS)}]")
            counts = [_count(value, f"rows[{index}]") for value in row[2:]]
            rows.append((_name(row[0], f"rows[{index}] resource"), _name(row[1], f"rows[{index}] action"),
                         counts[0], counts[1], counts[2], counts[3]))
        return FleetRecord(
            namespace=namespace,
            process=_name(data.get("process"), "process"),
            host=_name(data.get("host"), "host"),
            pid=_count(data.get("pid"), "pid"),
            at=_seconds(data.get("at"), "at", 2**40),
            ttl=_seconds(data.get("ttl"), "ttl", _MAX_TTL),
            driver=_name(data.get("driver"), "driver"),
            totals=totals,
            rows=tuple(rows),
        )
    except CorruptEntryError as exc:
        raise CorruptEntryError(f"{where}: {exc}") from None


def _rate(hits: int, misses: int) -> float:
    return hits / (hits + misses) if hits + misses else 0.0


@dataclass
class Fleet:
    """What the processes published: the live records, the keys whose records were refused (``invalid``), and
    the counts of records past their TTL (``expired``) and left unread past the limit (``skipped``)."""

    records: list[FleetRecord] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)
    expired: int = 0
    skipped: int = 0

    def namespaces(self) -> list[dict[str, Any]]:
        """Per namespace: the processes publishing and the sum of their totals, with ``hit_rate``."""
        sums: dict[str, dict[str, Any]] = {}
        for record in self.records:
            into = sums.setdefault(record.namespace, {"namespace": record.namespace, "processes": 0,
                                                      **dict.fromkeys(TOTALS, 0)})
            into["processes"] += 1
            for name in TOTALS:
                into[name] += record.totals[name]
        for into in sums.values():
            into["hit_rate"] = _rate(into["hits"], into["misses"])
        return [sums[name] for name in sorted(sums)]

    def rows(self) -> list[dict[str, Any]]:
        """Per namespace, resource and action: the sum of every process's counters, with ``hit_rate``."""
        sums: dict[tuple[str, str, str], dict[str, Any]] = {}
        for record in self.records:
            for resource, action, *counts in record.rows:
                into = sums.setdefault((record.namespace, resource, action), {
                    "namespace": record.namespace, "resource": resource, "action": action, "processes": 0,
                    **dict.fromkeys(ROW_COUNTERS, 0)})
                into["processes"] += 1
                for name, count in zip(ROW_COUNTERS, counts, strict=True):
                    into[name] += count
        for into in sums.values():
            into["hit_rate"] = _rate(into["hits"], into["misses"])
        return [sums[labels] for labels in sorted(sums)]

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        """JSON-ready: ``namespaces``, ``rows``, ``processes`` (with the age of their record), ``invalid``."""
        now = time.time() if now is None else now
        return {
            "namespaces": self.namespaces(),
            "rows": self.rows(),
            "processes": [{"process": r.process, "namespace": r.namespace, "host": r.host, "pid": r.pid,
                           "driver": r.driver, "age_seconds": round(max(0.0, now - r.at), 3)}
                          for r in sorted(self.records, key=lambda r: (r.namespace, r.process))],
            "invalid": [{"key": key, "error": error} for key, error in self.invalid],
            "expired": self.expired,
            "skipped": self.skipped,
        }


def read_fleet(
    driver: Driver,
    namespace: str | None = None,
    *,
    clock: Callable[[], float] = time.time,
    batch: int = 500,
    max_records: int = MAX_RECORDS,
) -> Fleet:
    """Every live record under ``driver``'s fleet prefix (of ``namespace`` only, if given).

    Records past their TTL (S3 keeps them) are counted in ``expired`` and left out; records that do not parse
    are listed in ``invalid``; past ``max_records`` keys the rest are not read, only counted in ``skipped`` (a
    flood of forged keys costs a bounded read). Backend failures propagate (:class:`~cachekit.errors.DriverError`).

    :raises ConfigurationError: ``driver`` keeps its entries in one process: there is no fleet to read.
    """
    shared = fleet_driver(driver)
    if shared is None:
        raise ConfigurationError(f"a {driver.name} cache lives in one process: it has no fleet (fleet stats are "
                                 "published to a shared backend: redis, s3, or a filesystem directory)")
    prefix = FLEET_PREFIX + (f"{namespace}/" if namespace else "")
    keys = sorted(shared.keys(prefix))
    fleet = Fleet(skipped=max(0, len(keys) - max_records))
    keys = keys[:max_records]
    now = clock()
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        for key, blob in zip(chunk, shared.get_many(chunk), strict=True):
            if not isinstance(blob, (bytes, bytearray, memoryview)):
                continue  # gone (expired or deleted) between the listing and the read
            try:
                record = parse_record(blob, key)
            except CorruptEntryError as exc:
                fleet.invalid.append((key, str(exc)))
                continue
            if record.expired(now):
                fleet.expired += 1
            else:
                fleet.records.append(record)
    return fleet


# -- publishing ---------------------------------------------------------------------------------------------------


def _rows_of(namespace: str) -> dict[tuple[str, str], list[int]]:
    """This process's per resource/action counters of ``namespace``, summed over tiers."""
    with AGGREGATES.lock:
        counters = [c for labels, c in AGGREGATES.counters.items() if labels[0] == namespace]
    rows: dict[tuple[str, str], list[int]] = {}
    for counter in counters:
        _, resource, action, _tier = counter.labels
        into = rows.setdefault((resource, action), [0, 0, 0, 0])
        into[0] += counter.hits
        into[1] += counter.misses
        into[2] += counter.sets
        into[3] += counter.errors
    return rows


class StatsPublisher:
    """Publishes the counters of the caches of one namespace on one backend, for this process.

    Built by ``Cache(publish_stats=...)``; reachable as ``cache.stats_publisher``. Records are written by a
    background thread every ``interval`` seconds (:meth:`flush` writes one now); a failure to write is logged
    (rate-limited) and never reaches a read.
    """

    def __init__(self, driver: Driver, namespace: str, interval: float) -> None:
        self.driver = driver
        self.namespace = namespace
        self.interval = float(interval)
        self.ttl = 3 * self.interval
        self._caches: weakref.WeakSet[Cache] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        # Counts from now on: the per resource/action counters are the process's, and may hold the counts of an
        # earlier cache of this namespace (closed, or counted by metrics before).
        self._baseline: tuple[dict[str, int], dict[tuple[str, str], list[int]]] = ({}, _rows_of(namespace))
        self._identify()
        self.due = 0.0  # the background thread publishes at once, then every interval
        #: Records written so far.
        self.published = 0

    def _identify(self) -> None:
        self.process, self.host, self.pid = _process_id()
        self.key = f"{FLEET_PREFIX}{self.namespace}/{self.process}"

    def add(self, cache: Cache) -> None:
        """Publish ``cache``'s counters too (the caches of one namespace on one backend share a record)."""
        with self._lock:
            self._caches.add(cache)

    @property
    def alive(self) -> bool:
        """Whether a cache is still published by this publisher."""
        with self._lock:
            return bool(self._caches)

    def remove(self, cache: Cache) -> bool:
        """Stop publishing ``cache``; True when no cache is left (the publisher is then done)."""
        with self._lock:
            self._caches.discard(cache)
            return not self._caches

    def _totals(self) -> dict[str, int]:
        totals = dict.fromkeys(TOTALS, 0)
        with self._lock:
            caches = list(self._caches)
        for cache in caches:
            stats = cache.stats_enabled
            totals["hits"] += cache.hits if stats else 0
            totals["misses"] += cache.misses if stats else 0
            totals["sets"] += cache.sets if stats else 0
            totals["deletes"] += cache.deletes if stats else 0
            totals["errors"] += cache.errors
            totals["invalidations"] += cache.invalidations
            fresh = getattr(cache, "_fresh", None)
            for counts in list(fresh.counts.values()) if fresh is not None else ():
                for name in _FRESHNESS_TOTALS:
                    totals[name] += getattr(counts, name)
        return totals

    def after_fork(self) -> None:
        """In a forked child: a record of its own, counting from the fork (the parent's counts are the parent's)."""
        self._lock, self._flushing = threading.Lock(), threading.Lock()
        self._identify()
        self._baseline = (self._totals(), _rows_of(self.namespace))
        self.due = 0.0

    def record(self, now: float | None = None) -> bytes:
        """The record this process would publish now (JSON, at most :data:`MAX_RECORD_BYTES`)."""
        base_totals, base_rows = self._baseline
        totals = {name: max(0, count - base_totals.get(name, 0)) for name, count in self._totals().items()}
        counted: list[tuple[str, str, list[int]]] = []
        for (resource, action), counts in _rows_of(self.namespace).items():
            old = base_rows.get((resource, action), [0, 0, 0, 0])
            counted.append((resource[:MAX_NAME], action[:MAX_NAME],
                            [max(0, new - before) for new, before in zip(counts, old, strict=True)]))
        counted.sort(key=lambda row: -(row[2][0] + row[2][1]))
        if len(counted) > MAX_ROWS:  # the busiest rows, and the others summed
            rest = counted[MAX_ROWS - 1 :]
            counted = [*counted[: MAX_ROWS - 1], ("other", "other", [sum(r[2][i] for r in rest) for i in range(4)])]
        rows: list[list[Any]] = [[resource, action, *counts] for resource, action, counts in counted]
        data: dict[str, Any] = {
            "v": _VERSION, "namespace": self.namespace, "process": self.process, "host": self.host, "pid": self.pid,
            "at": time.time() if now is None else now, "ttl": self.ttl, "driver": self.driver.name[:MAX_NAME],
            "totals": totals, "rows": rows,
        }
        blob = json.dumps(data, separators=(",", ":")).encode()
        while len(blob) > MAX_RECORD_BYTES and rows:  # long non-ASCII names: keep what fits
            rows = data["rows"] = rows[: len(rows) // 2]
            blob = json.dumps(data, separators=(",", ":")).encode()
        return blob

    def flush(self) -> bool:
        """Write this process's record now; False (logged, rate-limited) when the backend failed."""
        try:
            with self._flushing:  # a flush computes and writes in turn: a later write never carries older counts
                self.driver.set(self.key, self.record(), self.ttl)
                self.published += 1
        except Exception as exc:
            log_once_per_interval(
                logging.WARNING, ("fleet", self.namespace, self.driver.name, type(exc).__name__),
                "cachekit: publishing the stats of namespace %r to %s failed: %s; retried in %g s",
                self.namespace, self.driver.name, redact(str(exc)), self.interval,
            )
            return False
        return True


def check_interval(value: object) -> float | None:
    """``publish_stats=``: ``False``/``None`` (off), ``True`` (:data:`DEFAULT_INTERVAL`) or seconds > 0."""
    if value is None or value is False:
        return None
    if value is True:
        return DEFAULT_INTERVAL
    if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
        return float(value)
    raise ConfigurationError(f"publish_stats must be True, False or the seconds between two records (> 0); "
                             f"got {value!r}")


class _Scheduler:
    """One daemon thread per process that flushes every publisher when it is due."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.publishers: dict[tuple[Any, str], StatsPublisher] = {}
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.at_exit = False

    def publisher_for(self, cache: Cache, driver: Driver, interval: float) -> StatsPublisher:
        from .generations import store_for

        backend = store_for(cache.driver).identity  # two drivers on one server share a record
        with self.lock:
            found = self.publishers.get((backend, cache.namespace))
            if found is None:
                found = self.publishers[(backend, cache.namespace)] = StatsPublisher(driver, cache.namespace, interval)
            else:
                found.interval = min(found.interval, interval)
                found.ttl = 3 * found.interval
            found.add(cache)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="cachekit-stats-publisher", daemon=True)
                self.thread.start()
            if not self.at_exit:
                self.at_exit = True
                atexit.register(self.flush_all)
        self.wake.set()
        return found

    def flush_all(self) -> None:
        """At exit: publish the last counts of the caches left open (a short job would otherwise show the zeros
        it published when it started). A backend that fails costs its breaker's fail-fast or one timeout."""
        with self.lock:
            publishers = list(self.publishers.values())
        for publisher in publishers:
            if publisher.alive:
                publisher.flush()

    def release(self, cache: Cache, publisher: StatsPublisher) -> None:
        """``cache`` closes: publish its last counts; forget the publisher when it was the last cache."""
        publisher.flush()
        if publisher.remove(cache):
            with self.lock:
                for labels, known in list(self.publishers.items()):
                    if known is publisher:
                        del self.publishers[labels]

    def _run(self) -> None:
        while True:
            with self.lock:
                publishers = list(self.publishers.values())
            now = time.monotonic()
            for publisher in publishers:
                if not publisher.alive:  # its caches were dropped without close()
                    with self.lock:
                        self.publishers = {k: p for k, p in self.publishers.items() if p is not publisher}
                elif publisher.due <= now:
                    publisher.flush()
                    publisher.due = now + publisher.interval
            self.wake.clear()
            wait = min((p.due for p in publishers if p.alive), default=now + 60.0) - time.monotonic()
            self.wake.wait(max(0.05, wait))

    def after_fork(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread = None
        for publisher in self.publishers.values():
            publisher.after_fork()
        if self.publishers:
            self.thread = threading.Thread(target=self._run, name="cachekit-stats-publisher", daemon=True)
            self.thread.start()


_SCHEDULER: Final = _Scheduler()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_SCHEDULER.after_fork)


def start_publishing(cache: Cache, setting: object) -> StatsPublisher | None:
    """``Cache(publish_stats=setting)``: count ``cache``'s reads per resource/action and publish them every
    interval; ``None`` when ``setting`` is off.

    A cache whose entries live in one process has no fleet: a warning, and ``None``.

    :raises ConfigurationError: ``setting`` is neither a bool nor seconds > 0.
    """
    interval = check_interval(setting)
    if interval is None:
        return None
    import warnings

    from .errors import CacheWarning

    driver = fleet_driver(cache.driver)
    if driver is None:
        warnings.warn(f"publish_stats: a {cache.driver.name} cache lives in one process, so it has no fleet and "
                      "publishes nothing; fleet stats need a shared backend (redis, s3, a filesystem directory, or "
                      "a tier of one)", CacheWarning, stacklevel=3)
        return None
    cache._fleet_counting(True)
    return _SCHEDULER.publisher_for(cache, driver, interval)


def stop_publishing(cache: Cache, publisher: StatsPublisher) -> None:
    """``cache`` closes: its last counts are published, and its counting hooks come off."""
    _SCHEDULER.release(cache, publisher)
    cache._fleet_counting(False)
