"""The namespace: one driver, one codec, policies, stats and single-flight, behind a small cache API.

:class:`Cache` is what decorated reads talk to. It owns every rule that holds for all drivers:

* reads fail open: a driver error or a corrupt blob is a miss (counted, logged once per cause, the bad entry
  dropped), so a broken cache never breaks a read;
* concurrent misses of one key call the loader once (single flight, :mod:`cachekit._flight`, an object the
  cache owns);
* keys end with the generations of the scopes they depend on (:mod:`cachekit.scopes`), and a write
  invalidates by bumping generations in the backend's store (:mod:`cachekit.generations`): O(scopes touched)
  whatever is cached, and a value loaded before a write lands under a key no later read computes, in this
  process or any other;
* a bump that fails is retried, then kept pending under a private generation, so this process never serves
  what it invalidated (see :mod:`cachekit.generations.view`).

The async twins (``aget`` ... and the ``_aread``/``_astore`` halves the decorators and routes await) are
methods here too, beside their sync bodies. Events and metrics observe a cache from above
(:mod:`cachekit.events`): the cache only registers itself and hands ``on`` on; nothing it imports imports it.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .fleet import StatsPublisher
    from .health import Health

from . import _logging
from ._build import (
    DEFAULT_TTL,
    NAMESPACE_OPTION_NAMES,
    NAMESPACE_OPTIONS,
    build_codec,
    build_driver,
    check_lock,
    check_namespace,
    check_reclaimable,
    check_retries,
    configure_async,
)
from ._executor import run_blocking
from ._flight import Flights, load_under_lock
from ._freshness import FreshState, resource_of
from ._options import check_flag, unknown_options_message
from ._redact import redact
from ._types import DEFAULT, MISSING, TTL, Clock, check_key, normalize_ttl
from .drivers import Driver
from .drivers._limits import limit_reads
from .drivers.base import Reader
from .errors import CodecError, ConfigurationError, SerializationError, UncacheableValueWarning
from .events import CacheEvent, Subscription, count_for_fleet, listen, register
from .fleet import start_publishing, stop_publishing
from .generations import store_for
from .generations._signing import GenerationSeal
from .generations.view import GenerationView, KeyTemplate
from .health import warn_if_unreachable
from .keys import KeySpec, format_key, get_key_resolver
from .policies import MethodPolicy, parse_method_policies
from .scopes import NAMESPACE_SCOPE, Invalidation, invalidation_scopes, key_scopes, partition_scopes, read_scopes
from .stats import CacheStats, ReadCounts

__all__ = ["DEFAULT_TTL", "NAMESPACE_OPTIONS", "Cache", "Namespace"]

logger = logging.getLogger("cachekit")

_RETRY_INTERVAL = 1.0  # seconds between retries of a failed bump
_FAILED: Any = object()  # get_many: a key whose blob was corrupt (an error, not a miss)
_MISS_COUNTER_LIMIT = 10_000  # keys whose misses min_hits_before_store counts
#: What :meth:`Cache._blob` returns for a value it refuses to store (uncacheable, over a size limit): the entry
#: under its key is then dropped, so a read never serves the value this one was meant to replace.
_REFUSED: Any = type("Refused", (), {"__repr__": lambda self: "REFUSED"})()


class Cache:
    """A cache namespace: a driver, a codec, policies and stats.

    E.g.::

        cache = Cache(driver="memory", namespace="users", ttl=300,
                      config={"max_memory_bytes": 64 << 20, "enable_compression": True})
        cache.set("k", {"a": 1}, ttl=10)
        cache.get("k")              # {'a': 1}
        cache.stats().hit_rate

    :param driver: a registry name (``"memory"``, ``"filesystem"``, ``"redis"``, ``"s3"``, ``"null"``), a
        ``"module:Class"`` path, or a :class:`~cachekit.drivers.Driver` instance.
    :param namespace: the first key segment; two namespaces on one server never see each other's keys.
    :param ttl: default TTL in seconds or a ``timedelta`` (``None``: no expiry). Default 300 s.
    :param config: driver options, plus namespace options: ``serializer``/``deserializer``,
        ``enable_compression``, ``compression``, ``compression_threshold`` (bytes, default 1024),
        ``compression_level``, ``case_sensitive`` (default ``True``), ``enable_stats`` (default ``True``),
        ``async_workers`` (threads for blocking drivers under ``async def`` reads; default
        ``CACHEKIT_ASYNC_WORKERS`` or ``min(32, cpu_count + 4)``).
    :param drivers: tiers for a multi-tier cache instead of ``driver``: ``[{"driver": "memory", "ttl": 60,
        "config": {...}}, {"driver": "redis", ...}]``, fastest first.
    :param promote_on_hit: multi-tier: copy a lower-tier hit into the faster tiers (with its remaining TTL).
    :param strategy: multi-tier: ``"write-through"`` or ``"lazy-promotion"``.
    :param method_policies: per action: ``True``/``False`` or ``{"enabled", "ttl", "max_payload_bytes",
        "min_hits_before_store", "none_ttl"}``.
    :param single_flight: let concurrent misses of one key call the loader once (default ``True``).
    :param distributed_lock: also across processes: a miss takes a lock in the backend (Redis) so that one
        process loads while the others wait up to ``lock_timeout`` seconds for its result (default ``False``).
        Sync reads only for now; ``async def`` reads single-flight within their process.
    :param lock_timeout: how long a distributed lock is held at most, and how long others wait for it (10 s).
    :param retry_attempts: tries for each invalidation before giving up (default 3).
    :param retry_delay: seconds before the first retry; doubled each time (default 0.05).
    :param clock: wall clock for TTLs (``time.time``); tests pass a fake one.
    :param publish_stats: publish this process's counters (per resource and action) to the shared backend, for
        ``cachekit stats --fleet``: ``True`` (every 10 s) or the seconds between two records; a background
        thread writes them, never a read (:mod:`cachekit.fleet`). Off by default: it costs the read counting
        hooks (about 3,100 instructions on a memory-tier hit) and one write per interval. A memory cache has no
        fleet (a warning).
    :param version: a version of what this namespace's reads return, part of every key they compute: entries
        written under another version are never read (at once, O(1): nothing is scanned). Two deploys live at once
        (a rolling deploy) each read and write their own entries. Keys of your own (``set``/``get``) are unchanged.

    Async code has twins of the key/value API: ``await cache.aget(key)``, ``aset``, ``adelete``, ``aget_many``,
    ``aset_many``, ``aclear``, ``ainvalidate``, ``ainvalidate_resource``, ``aclose``.
    """

    def __init__(
        self,
        driver: str | Driver | None = "memory",
        *,
        namespace: str | None = None,
        ttl: TTL = DEFAULT_TTL,
        config: Mapping[str, Any] | None = None,
        drivers: Sequence[Mapping[str, Any] | Driver] | None = None,
        promote_on_hit: bool = True,
        strategy: str = "write-through",
        method_policies: Mapping[str, object] | None = None,
        single_flight: bool = True,
        distributed_lock: bool = False,
        lock_timeout: float = 10.0,
        retry_attempts: int = 3,
        retry_delay: float = 0.05,
        clock: Clock | None = None,
        version: str | None = None,
        publish_stats: bool | float = False,
        **unknown_options: Any,
    ) -> None:
        if unknown_options:
            accepted = [name for name in inspect.signature(Cache).parameters if name != "unknown_options"]
            message = unknown_options_message("Cache", unknown_options, accepted)
            raise ConfigurationError(f"{message}. Driver options go in config={{...}}")
        self.namespace = check_namespace(namespace)
        if version is not None and (not isinstance(version, str) or not version):
            raise ConfigurationError(f"version must be a non-empty string such as '2026-01'; got {version!r}")
        self.version = version
        self.prefix = self.namespace + "/"
        self.ttl = normalize_ttl(ttl)
        self._clock: Clock = clock or time.time
        if not isinstance(config, (Mapping, type(None))):  # never echoed: a URL string may carry a password
            raise ConfigurationError(f"config must be a dict of options; got a {type(config).__name__}")
        options = dict(config or {})
        namespace_options = {k: options.pop(k) for k in NAMESPACE_OPTION_NAMES if k in options}
        self.driver = build_driver(driver, drivers, options, promote_on_hit, strategy, self._clock)
        configure_async(self.driver, namespace_options)
        self.codec = None if self.driver.stores_objects else build_codec(namespace_options, self._clock)
        if self.codec is not None:  # bounded entry reads (issue 19, item 6)
            limit_reads(self.driver, self.codec.max_value_bytes + self.codec.overhead)
        self.case_sensitive = check_flag("case_sensitive", namespace_options.get("case_sensitive", True))
        self.stats_enabled = check_flag("enable_stats", namespace_options.get("enable_stats", True))
        self._policies = parse_method_policies(method_policies)
        for ttl_in_force in (self.ttl, *(p.ttl for p in self._policies.values() if p.ttl is not DEFAULT)):
            check_reclaimable(ttl_in_force, self.driver)
        self._default_policy = MethodPolicy()
        self.disabled_actions = frozenset(a for a, p in self._policies.items() if not p.enabled)
        self._flights = Flights(check_flag("single_flight", single_flight))
        # Issue 21: freshness policies per action (cachekit._freshness), consulted after a miss (_load, _aload).
        self._fresh = FreshState.of(self, self._policies)
        self._lock_timeout = check_lock(distributed_lock, lock_timeout, self.driver)
        self._retry_attempts = check_retries(retry_attempts, retry_delay)
        self._retry_delay = float(retry_delay)
        # Bound once: the hit path should not look these up per call.
        self._driver_get = self.driver.get
        self._decode = self.codec.decode if self.codec is not None else None
        self._trusted_blobs = self.codec is not None and self.driver.holds_blobs_in_process
        if self._trusted_blobs and self.codec is not None:
            # Its blobs never leave the process: no CRC per hit (see the codec); refused for a signing codec.
            self._trusted_blobs = self.codec.trust_local_blobs()
        self._miss_counts: OrderedDict[str, int] = OrderedDict()
        self._gens = GenerationView(
            store_for(self.driver), self.namespace, retry_interval=_RETRY_INTERVAL, clock=self._clock,
            seal=GenerationSeal.from_options(namespace_options) if self.codec is not None else None,
            entry_ttl=_longest(self.ttl, *(p.ttl for p in self._policies.values() if p.ttl is not DEFAULT)),
        )
        probed = getattr(self._gens.store, "probed", None)  # hear of other processes' bumps at the next read
        self._probed_get: Callable[[str], Any] | None = None if probed is None else probed(self._driver_get)
        self._driver_get = self._probed_get or self._driver_get  # (generations/redis.py)
        self._partitions: dict[str, Mapping[str, Sequence[str]]] = {}
        # Keys already rendered by decorated reads, per call shape: (key, epoch, cell, template), valid while the
        # cell's epoch is the one rendered under. Kept on the namespace so a discarded Cache takes its memo with
        # it; bounded by the decorators.
        self._key_memo: dict[Any, tuple[str, int, Any, KeyTemplate]] = {}
        self._reads = ReadCounts()
        self._decode_at, self._decode_blob = self._decoders()
        self.hits = self.misses = self.sets = self.deletes = self.errors = self.invalidations = 0
        self._install_read()
        register(self)  # events and metrics (cachekit.events): hooks only while something observes
        warn_if_unreachable(self.driver, self.namespace)  # one log line now, rather than at the first read
        #: The publisher of fleet stats (:mod:`cachekit.fleet`) when ``publish_stats`` is on, else ``None``.
        self.stats_publisher: StatsPublisher | None = start_publishing(self, publish_stats)

    # -- keys ------------------------------------------------------------------------------------------------

    def key_for(
        self,
        spec: KeySpec | str,
        *,
        resource: str | None = None,
        params: Mapping[str, Any] | None = None,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
    ) -> str:
        """The key a read uses now: from a :class:`KeySpec`, or from an action and its arguments.

        The key ends with the current generations of the scopes the read depends on, so it changes when a
        write invalidates the read. E.g.::

            cache.key_for("count", resource="users", partition="by_region", partition_values={"region": "eu"})
        """
        if isinstance(spec, str):
            if not resource:
                raise ConfigurationError("key_for(action, ...) needs resource=, the resource name")
            merged = dict(params or {})
            if partition is not None:
                merged["partition"], merged["partition_values"] = partition, partition_values
            spec = get_key_resolver(spec)(resource, spec, merged)
        return self._gens.render(self.key_template(spec))[0]

    def key_template(self, spec: KeySpec, partitions: Mapping[str, Sequence[str]] | None = None) -> KeyTemplate:
        """The generation-free part of ``spec``'s key and the scopes it depends on (used by the decorators).

        ``partitions`` are the resource's declared partitions; by default those declared to this namespace.
        """
        if partitions is None:
            partitions = self._partitions.get(spec.resource)
        if self.version is not None:  # Cache(version=...): part of every read's key (the scopes are shared)
            spec = dataclasses.replace(spec, params={**spec.params, "~version": self.version})
        base = format_key(self.namespace, spec, case_sensitive=self.case_sensitive)
        return self._gens.template(base, read_scopes(spec, partitions, case_sensitive=self.case_sensitive))

    def declare_partitions(self, resource: str, partitions: Mapping[str, Sequence[str]]) -> None:
        """Tell this namespace the partitions of ``resource`` (``{"by_region": ["region"]}``).

        Reads scoped to one of them are then invalidated only by writes to that partition value; reads on other
        partition arguments depend on the resource's aggregates. Decorated reads declare their instance's
        ``partitions`` attribute, and the plugin its resources', so this is rarely needed by hand.
        """
        if self._partitions.get(resource) != partitions:
            self._partitions[resource] = {str(k): tuple(v) for k, v in partitions.items()}

    def partitions_of(self, resource: str) -> Mapping[str, Sequence[str]] | None:
        """The partitions declared for ``resource``, if any."""
        return self._partitions.get(resource)

    def _full_key(self, key: str) -> str:
        key = check_key(key)
        if key.startswith(self.prefix):
            return key  # from key_for: already folded where case_sensitive=False
        return self.prefix + (key if self.case_sensitive else key.lower())

    def _settable_key(self, key: str) -> str:
        """The full key of a hand-written ``set``: refused in the decorated reads' key space (issue 19).

        Decorated reads own ``{ns}/resource={r}/action=...`` and ``{ns}/resource={r}/partition=...``; a ``set``
        there (with or without the namespace) could replace what a decorated read returns, so it is a
        :class:`ConfigurationError`. Reads (``get``) and ``delete`` of such keys stay allowed.
        """
        full = self._full_key(key)
        rest = full[len(self.prefix) :].split("/", 2)
        if rest[0].startswith("resource=") and len(rest) > 1 and rest[1].startswith(("action=", "partition=")):
            raise ConfigurationError(
                f"cannot set {key!r:.120}: keys under 'resource=.../action=' and 'resource=.../partition=' belong to "
                "decorated reads (use the read's .refresh(...) to store a value there, or another key of your own)"
            )
        return full

    # -- the key/value API -----------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key`` (a key from :meth:`key_for`, or your own, which is put in the namespace).

        Returns ``default`` on a miss; a cached ``None`` is a hit and returns ``None``. Never raises for a
        broken backend: that is a miss, counted in ``stats().errors``.
        """
        read = self._read  # an attribute, not a method: LOAD_METHOD would take its slow path
        value = read(self._full_key(key))
        return default if value is MISSING else value

    def set(self, key: str, value: Any, ttl: TTL = DEFAULT) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the namespace's TTL).

        Returns whether it was stored: ``False`` when the value cannot be serialized (with an
        :class:`~cachekit.errors.UncacheableValueWarning`) or the driver failed (counted in stats).

        :raises ConfigurationError: ``key`` is in the decorated reads' key space (``resource=.../action=...``):
            a hand-written key never changes what a decorated read returns.
        """
        seconds = self.ttl if ttl is DEFAULT else normalize_ttl(ttl)
        return self._write(self._settable_key(key), value, seconds, None)

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was present. Driver errors propagate (an explicit delete must work)."""
        removed = self.driver.delete(self._full_key(key))
        self.deletes += removed
        return removed

    def clear(self, prefix: str = "") -> int:
        """Remove this namespace's entries (those under ``prefix`` within it); other namespaces are untouched.

        Without a prefix, the namespace's generation is bumped first, so every process stops reading its old
        entries at once; then the entries are deleted (a scan: an explicit clear is the one O(entries)
        operation). Returns how many entries were deleted.
        """
        if not prefix:
            self._bump([NAMESPACE_SCOPE])
        try:
            removed = self.driver.clear_many([self._full_prefix(prefix)])
        except Exception as exc:
            self._backend_failed(None, exc)
            return 0
        self.deletes += removed
        return removed

    def keys(self, prefix: str = "", *, orphans: bool = False) -> list[str]:
        """This namespace's stored keys (under ``prefix`` within it) that reads can still reach.

        ``orphans=True`` lists every stored key, also those that writes left under old generations (they are
        not deleted: TTLs and eviction remove them).
        """
        stored = self.driver.keys(self._full_prefix(prefix))
        return stored if orphans else [key for key in stored if self.is_current(key)]

    def is_current(self, key: str) -> bool:
        """Whether a read could still reach ``key``: its generations are the ones in force now."""
        scopes = key_scopes(key, self.namespace, self._partitions)
        if scopes is None:
            return True  # a key of your own (Cache.set): no generations
        suffix = key.rpartition("@")[2]
        return self._gens.render(self._gens.template("", scopes))[0] == "@" + suffix

    def _full_prefix(self, prefix: str) -> str:
        if prefix.startswith(self.prefix):
            return prefix
        return self.prefix + (prefix if self.case_sensitive else prefix.lower())

    def size(self) -> int:
        """Number of entries in this namespace."""
        return len(self.keys())

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values found for ``keys`` (misses left out), in one driver batch where the driver supports it."""
        wanted = list(keys)
        full = [self._full_key(k) for k in wanted]
        try:
            blobs = self.driver.get_many(full)
        except Exception as exc:
            self._backend_failed(None, exc)
            return {}
        return self._found(wanted, full, blobs)

    def _found(self, wanted: list[str], full: list[str], blobs: Sequence[Any]) -> dict[str, Any]:
        """The values of one ``get_many`` batch (sync or async), misses left out; hits, misses, errors counted."""
        found: dict[str, Any] = {}
        failed = 0
        for key, full_key, blob in zip(wanted, full, blobs, strict=True):
            value = self._decoded(full_key, blob, _FAILED)
            if value is _FAILED:
                failed += 1  # counted in errors, not in misses: as a read of that key alone (_read)
            elif value is not MISSING:
                found[key] = value
        hits = sum(1 for key in wanted if key in found)  # each requested key counts, repeated ones too
        self.hits += hits
        self.misses += len(wanted) - hits - failed
        return found

    def set_many(self, items: Mapping[str, Any], ttl: TTL = DEFAULT) -> int:
        """Store every ``key -> value``; return how many were stored."""
        seconds = self.ttl if ttl is DEFAULT else normalize_ttl(ttl)
        keys = [self._settable_key(k) for k in items]  # all checked before any is stored
        return sum(self._write(key, v, seconds, None) for key, v in zip(keys, items.values(), strict=True))

    # -- invalidation ----------------------------------------------------------------------------------------

    def invalidate(self, invalidation: Invalidation) -> int:
        """Invalidate what one write changed: its items, the resource's aggregates, the partitions it touched.

        Bumps those scopes' generations (O(scopes), whatever is cached); returns how many scopes it bumped.
        Call it after the write has committed.
        """
        return self._bump(invalidation_scopes(invalidation, case_sensitive=self.case_sensitive))

    def invalidate_resource(self, resource: str) -> int:
        """Invalidate every entry of ``resource`` (and nothing of resources whose names merely start the same)."""
        return self.invalidate(Invalidation(resource, whole=True))

    def invalidate_partition(
        self, resource: str, partition: str, partition_values: Mapping[str, Any] | None = None
    ) -> int:
        """Invalidate the aggregates of one partition value combination, or of every value (``None``)."""
        return self._bump(partition_scopes(resource, partition, partition_values, case_sensitive=self.case_sensitive))

    @property
    def pending_invalidations(self) -> frozenset[str]:
        """Scopes whose bump could not reach the backend yet (retried in the background)."""
        return self._gens.pending

    def _bump(self, scopes: list[str]) -> int:
        if self._gens.bump(scopes, attempts=self._retry_attempts, delay=self._retry_delay):
            self.invalidations += len(scopes)
        else:
            self._invalidation_failed(scopes)
        return len(scopes)

    def _invalidation_failed(self, scopes: list[str]) -> None:
        self.errors += 1
        error = self._gens.last_error or RuntimeError("the generation store failed")
        if not _logging.invalidation_failed(self.namespace, self.driver.name, self._retry_attempts, error):
            logger.debug("cachekit: invalidation of %d scope(s) on %s is pending", len(scopes), self.driver.name)

    # -- the key/value API for async code --------------------------------------------------------------------
    # Each is the twin of the sync method with the same arguments, results and fail-open rules, on the driver's
    # async twins (redis.asyncio for Redis, inline for memory, cachekit's executor for the filesystem and S3),
    # so none blocks the event loop; generation bumps run the sync path through run_blocking.

    async def aget(self, key: str, default: Any = None) -> Any:
        """The async twin of :meth:`get`: ``default`` on a miss, never raises for a broken backend."""
        value = await self._aread(self._full_key(key))
        return default if value is MISSING else value

    async def aset(self, key: str, value: Any, ttl: TTL = DEFAULT) -> bool:
        """The async twin of :meth:`set`: whether the value was stored."""
        seconds = self.ttl if ttl is DEFAULT else normalize_ttl(ttl)
        return await self._astore(self._settable_key(key), value, seconds, None)

    async def adelete(self, key: str) -> bool:
        """The async twin of :meth:`delete` (driver errors propagate: an explicit delete must work)."""
        removed = await self.driver.adelete(self._full_key(key))
        self.deletes += removed
        return removed

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The async twin of :meth:`get_many`: the values found (misses left out), in one driver batch."""
        wanted = list(keys)
        full = [self._full_key(k) for k in wanted]
        try:
            blobs = await self.driver.aget_many(full)
        except Exception as exc:
            self._backend_failed(None, exc)
            return {}
        return self._found(wanted, full, blobs)

    async def aset_many(self, items: Mapping[str, Any], ttl: TTL = DEFAULT) -> int:
        """The async twin of :meth:`set_many`: how many were stored (one driver batch)."""
        seconds = self.ttl if ttl is DEFAULT else normalize_ttl(ttl)
        keys = [self._settable_key(k) for k in items]  # all checked before any is stored
        blobs: dict[str, Any] = {}
        for key, value in zip(keys, items.values(), strict=True):
            blob = self._blob(key, value, seconds, None)
            if blob is _REFUSED:
                await self._adrop(key)  # as set_many: the old value is not what the caller has now
            elif blob is not MISSING:
                blobs[key] = blob
        if not blobs:
            return 0
        try:
            await self.driver.aset_many(blobs, seconds)
        except Exception as exc:
            self._backend_failed(None, exc)
            return 0
        self.sets += len(blobs)
        return len(blobs)

    async def aclear(self, prefix: str = "") -> int:
        """The async twin of :meth:`clear`: the namespace's generation is bumped first (every process stops
        reading its entries at once), then the entries are deleted."""
        if not prefix:
            await run_blocking(self.driver, self._bump, [NAMESPACE_SCOPE])
        try:
            removed = await self.driver.aclear_many([self._full_prefix(prefix)])
        except Exception as exc:
            self._backend_failed(None, exc)
            return 0
        self.deletes += removed
        return removed

    async def ainvalidate(self, invalidation: Invalidation) -> int:
        """The async twin of :meth:`invalidate`: how many scopes were bumped."""
        return await run_blocking(self.driver, self.invalidate, invalidation)

    async def ainvalidate_resource(self, resource: str) -> int:
        """The async twin of :meth:`invalidate_resource`."""
        return await self.ainvalidate(Invalidation(resource, whole=True))

    async def aclose(self) -> None:
        """The async twin of :meth:`close`: this loop's background refreshes (awaited up to 2 s, then cancelled),
        the generation store, then the driver (its async clients too)."""
        await self._fresh.adrain(2.0)
        await run_blocking(self.driver, self._gens.close)
        await self.driver.aclose()

    # -- stats and lifetime ----------------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """A snapshot of this namespace's counters and its driver's facts (entries, bytes, evictions)."""
        try:
            details = dict(self.driver.stats())
        except Exception as exc:
            details = {"error": redact(f"{type(exc).__name__}: {exc}")}
        details["invalidations"] = self.invalidations
        details["pending_invalidations"] = len(self._gens.pending)
        if self._fresh.counts:
            details["freshness"] = self._fresh.snapshot()
        try:
            size: int | None = self.size()
        except Exception:
            size = None
        visible = self.stats_enabled
        return CacheStats(
            hits=self.hits if visible else 0,
            misses=self.misses if visible else 0,
            sets=self.sets if visible else 0,
            deletes=self.deletes if visible else 0,
            evictions=int(details.get("evictions", 0) or 0),
            errors=self.errors,
            size=size,
            memory_usage_bytes=details.get("memory_usage_bytes"),
            enabled=visible,
            driver=self.driver.name,
            details=details,
        )

    def ping(self) -> Health:
        """Probe the backend once per tier, timed (:mod:`cachekit.health`); never raises for a failing backend.

        E.g. ``cache.ping().ok``, ``cache.ping().tiers[0].latency`` (seconds).
        """
        from .health import ping_driver

        return ping_driver(self.driver)

    def on(self, event: str, callback: Callable[[CacheEvent], None]) -> Subscription:
        """Call ``callback(event)`` on every ``event`` of this cache; returns a :class:`~cachekit.events.Subscription`.

        ``event`` is one of ``"hit"``, ``"miss"``, ``"set"``, ``"invalidate"``, ``"error"``, ``"breaker"``
        (see :mod:`cachekit.events`).
        """
        return listen(self, event, callback)

    def _fleet_counting(self, on: bool) -> None:
        """Keep this cache's per resource/action read counters while it publishes fleet stats (cachekit.fleet)."""
        count_for_fleet(self, on)

    def reset_stats(self) -> None:
        """Zero the hit, miss, set, delete, invalidation and error counters."""
        self.hits = self.misses = self.sets = self.deletes = self.errors = self.invalidations = 0

    def policy(self, action: str) -> MethodPolicy:
        """The policy in force for ``action``."""
        return self._policies.get(action, self._default_policy)

    def close(self) -> None:
        """Close the driver (connections, files, background threads): background refreshes first (up to 2 s), then
        publish the last fleet stats."""
        self._fresh.drain(2.0)
        publisher, self.stats_publisher = getattr(self, "stats_publisher", None), None
        if publisher is not None:
            stop_publishing(self, publisher)
        self._gens.close()
        self.driver.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Cache namespace={self.namespace!r} driver={self.driver!r}>"

    # -- the read path (used by the decorators) --------------------------------------------------------------

    #: The read of one key (the value or MISSING; never raises for a driver or codec failure): the driver's
    #: reader (:meth:`Driver.reader <cachekit.drivers.Driver.reader>`), put here by :meth:`_install_read`.
    _read: Reader

    @property
    def hits(self) -> int:
        """Reads served from the cache."""
        return self._reads.hits

    @hits.setter
    def hits(self, count: int) -> None:
        self._reads.hits = count

    @property
    def misses(self) -> int:
        """Reads that found nothing (or something unusable) in the cache."""
        return self._reads.misses

    @misses.setter
    def misses(self, count: int) -> None:
        self._reads.misses = count

    def _install_read(self) -> None:
        """Make :attr:`_read` the driver's reader (:meth:`Driver.reader <cachekit.drivers.Driver.reader>`): the
        one place a read's body is chosen. Called at construction and again when observation hooks come off."""
        self._read = self._reader(type(self.driver).reader)

    def _reader(self, hook: Callable[..., Reader]) -> Reader:
        """The reader ``hook`` (a :meth:`Driver.reader`, e.g. the generic ``Driver.reader`` in the differential
        tests) builds for this cache's driver, counters, codec and failure report."""
        return hook(
            self.driver, self._reads, _failure_report(self), self._decode, decode_at=self._decode_at,
            get=self._probed_get, trusted=self._trusted_blobs, deadline_of=self._deadline_of(), clock=self._clock,
        )  # fmt: skip

    def _decoders(self) -> tuple[Callable[[str, Any], Any] | None, Callable[[str, Any], Any] | None]:
        """``decode_at`` for the reader, and the decoding of blobs read without it (``aget``, ``get_many``, the
        re-check): ``(key, blob) -> value``, ``None`` for a plain ``decode(blob)``."""
        # A signed entry is bound to its key (issue 19): every decode is given the key it was read under.
        decode_at = self.codec.decode_at if self.codec is not None and self.codec.signed else None
        # Blobs read outside the reader are decoded as the reader decodes them: a tiered driver's memory tier
        # serves the copies its reader serves (Driver.blob_decoder).
        blobs = self.driver.blob_decoder(self._decode, decode_at=decode_at, trusted=self._trusted_blobs,
                                         deadline_of=self._deadline_of(), clock=self._clock)  # fmt: skip
        return decode_at, blobs

    def _deadline_of(self) -> Callable[[Any], float | None] | None:
        """The codec's envelope deadline of a blob, for a driver that keeps decoded values (unsigned codecs)."""
        codec = self.codec
        return None if codec is None or codec.signed else codec.expires_at

    def _decoded(self, key: str, raw: Any, failed: Any = MISSING) -> Any:
        """The value of a blob the driver returned, MISSING; ``failed`` for a corrupt one (counted, dropped)."""
        if raw is MISSING or self._decode is None:
            return raw
        try:
            at = self._decode_blob
            return self._decode(raw) if at is None else at(key, raw)
        except CodecError as exc:
            self._backend_failed(key, exc)
            self._drop(key)
            return failed

    async def _aread(self, key: str) -> Any:
        """The async twin of :meth:`_read`: through ``await driver.aget`` (no thread for Redis or memory)."""
        try:
            raw: Any = await self.driver.aget(key)
        except Exception as exc:
            self._backend_failed(key, exc)
            return MISSING
        if raw is not MISSING and self._decode is not None:
            try:
                at = self._decode_blob  # keyed: a signing codec's, or a memory tier's kept copies
                raw = self._decode(raw) if at is None else at(key, raw)
            except CodecError as exc:
                self._backend_failed(key, exc)
                await self._adrop(key)  # corrupt
                return MISSING
        if raw is MISSING:  # not found, or expired by its envelope
            self.misses += 1
            return MISSING
        self.hits += 1
        return raw

    async def _astore(self, key: str, value: Any, ttl: float | None, max_payload: int | None) -> bool:
        """The async twin of :meth:`_write`: encode ``value`` and store it with ``await driver.aset``."""
        blob = self._blob(key, value, ttl, max_payload)
        if blob is MISSING:
            return False
        if blob is _REFUSED:
            await self._adrop(key)
            return False
        try:
            await self.driver.aset(key, blob, ttl)
        except Exception as exc:
            self._backend_failed(key, exc)
            return False
        self.sets += 1
        return True

    def _write(self, key: str, value: Any, ttl: float | None, max_payload: int | None) -> bool:
        blob = self._blob(key, value, ttl, max_payload)
        if blob is MISSING:
            return False
        if blob is _REFUSED:
            self._drop(key)  # the previous value under this key is not what the caller has now (issue 19)
            return False
        try:
            self.driver.set(key, blob, ttl)
        except Exception as exc:
            self._backend_failed(key, exc)
            return False
        self.sets += 1
        return True

    def _blob(self, key: str, value: Any, ttl: float | None, max_payload: int | None) -> Any:
        """What the driver stores for ``value`` (the value itself for an object store).

        MISSING: store nothing (``ttl=0``); :data:`_REFUSED`: the value cannot be stored (uncacheable, over
        ``max_payload``), and the caller drops what the key holds.
        """
        if ttl == 0:
            return MISSING
        if self.codec is None:
            if isinstance(value, (Iterator, AsyncIterator)):
                warnings.warn(
                    f"a {type(value).__qualname__} is an iterator: the first caller would exhaust it and every hit "
                    f"would get it empty; returned uncached (key {key!r}). Return a list instead",
                    UncacheableValueWarning, stacklevel=5,
                )
                return _REFUSED
            return value
        try:
            blob = self.codec.encode(value, ttl, key)
        except SerializationError as exc:
            warnings.warn(f"{exc}; returned uncached (key {key!r})", UncacheableValueWarning, stacklevel=5)
            return _REFUSED
        return _REFUSED if max_payload is not None and len(blob) - self.codec.overhead > max_payload else blob

    def _drop(self, key: str) -> None:
        try:
            self.driver.delete(key)
        except Exception as exc:
            logger.debug("cachekit: could not drop corrupt entry %r: %s", key, exc)

    async def _adrop(self, key: str) -> None:
        try:
            await self.driver.adelete(key)
        except Exception as exc:
            logger.debug("cachekit: could not drop corrupt entry %r: %s", key, exc)

    def _backend_failed(self, key: str | None, exc: BaseException) -> None:
        """Count and log (rate-limited) a failed driver call or codec decode: a read, write, clear or lock."""
        self.errors += 1
        if not _logging.read_failed(self.namespace, self.driver.name, key, exc):
            logger.debug("cachekit: %s failed for %r: %s", self.driver.name, key, exc)

    # -- loading after a miss (used by the decorators) -------------------------------------------------------
    # Concurrent misses of one key share one load (self._flights); the key carries the generations read before
    # the load, so a value loaded while a write bumps them lands under a key that no later read computes.

    def _load(self, key: str, action: str, loader: Callable[[], Any], ttl: Any = DEFAULT) -> Any:
        """After a miss: call ``loader`` once for all concurrent missers of ``key`` and store the result."""
        if self._fresh.policies:  # an action with freshness policies (cachekit._freshness): its record decides
            fresh = self._fresh.policies.get(action)
            if fresh is not None:
                return self._fresh.after_miss(key, resource_of(key), action, fresh, loader, ttl)

        def load() -> Any:
            value = loader()
            self._after_load(key, action, value, ttl)
            return value

        def lead() -> Any:
            value = self._quiet_read(key)  # another leader may have stored it between our miss and our lead
            if value is not MISSING:
                return value
            if self._lock_timeout is None:
                return load()
            return load_under_lock(self.driver, key, self._lock_timeout, self._quiet_read, load, self._backend_failed)

        return self._flights.run(key, lead, load)

    async def _aload(self, key: str, action: str, loader: Callable[[], Awaitable[Any]], ttl: Any = DEFAULT) -> Any:
        """The async twin of :meth:`_load`; blocking drivers run on cachekit's executor."""
        if self._fresh.policies:  # an action with freshness policies (cachekit._freshness): its record decides
            fresh = self._fresh.policies.get(action)
            if fresh is not None:
                return await self._fresh.aafter_miss(key, resource_of(key), action, fresh, loader, ttl)

        async def load() -> Any:
            value = await loader()
            if self.driver.supports_async:
                planned = self._store_plan(key, action, value, ttl)
                if planned is not None:
                    await self._astore(key, value, *planned)
            else:  # a blocking driver without native twins: off the event loop, on cachekit's executor
                await run_blocking(self.driver, self._after_load, key, action, value, ttl)
            return value

        async def lead() -> Any:
            # Read the key again first, as the sync leader does: a miss whose read (on the executor, for tiers)
            # began before the previous flight stored and ended after that flight was gone must not load again
            # (issue 23, item 4: 37 of 200 bursts of 50 misses called the source twice).
            value = await self._aquiet_read(key)
            return value if value is not MISSING else await load()

        return await self._flights.arun(key, lead, load)

    async def _awrite(self, key: str, value: Any, ttl: float | None, max_payload: int | None) -> bool:
        """:meth:`_write` without blocking the event loop (the freshness policies' async stores)."""
        if self.driver.supports_async:
            return await self._astore(key, value, ttl, max_payload)
        return await run_blocking(self.driver, self._write, key, value, ttl, max_payload)

    def _after_load(self, key: str, action: str, value: Any, ttl: Any = DEFAULT) -> None:
        """Store a loaded value unless the policy says not yet."""
        planned = self._store_plan(key, action, value, ttl)
        if planned is not None:
            self._write(key, value, *planned)

    def _store_plan(self, key: str, action: str, value: Any, ttl: Any) -> tuple[float | None, int | None] | None:
        """(ttl, max payload) to store a loaded value with; ``None`` when the policy says not yet."""
        policy = self._policies.get(action, self._default_policy)
        if not self._ready_to_store(key, policy):
            return None
        if value is None and policy.none_ttl is not DEFAULT:
            ttl = policy.none_ttl
        elif ttl is DEFAULT:
            ttl = self.ttl if policy.ttl is DEFAULT else policy.ttl
        return ttl, policy.max_payload_bytes

    def _ready_to_store(self, key: str, policy: MethodPolicy) -> bool:
        needed = policy.min_hits_before_store
        if needed <= 1:
            return True
        counts = self._miss_counts
        seen = counts.pop(key, 0) + 1
        if seen >= needed:
            return True
        counts[key] = seen
        if len(counts) > _MISS_COUNTER_LIMIT:
            counts.popitem(last=False)
        return False

    def _quiet_read(self, key: str) -> Any:
        """The value under ``key`` or MISSING, counting nothing (a leader's re-check before it loads)."""
        try:
            return self._decoded(key, self._driver_get(key))
        except Exception:
            return MISSING

    async def _aquiet_read(self, key: str) -> Any:
        """:meth:`_quiet_read` without blocking the loop (the driver's async twin, or cachekit's executor)."""
        driver = self.driver
        if not driver.blocking:
            return self._quiet_read(key)
        if not driver.supports_async:
            return await run_blocking(driver, self._quiet_read, key)
        try:
            return self._decoded(key, await driver.aget(key))
        except Exception:
            return MISSING


#: Another name of :class:`Cache` (the design's word for it).
Namespace = Cache


def _longest(*ttls: Any) -> float | None:
    """The longest of the TTLs in force (``None``, no expiry, is the longest)."""
    if any(ttl is None for ttl in ttls):
        return None
    return max(float(ttl) for ttl in ttls)


def _failure_report(cache: Cache) -> Callable[[str, Exception], None]:
    """``failed(key, exc)`` for a reader: counted and logged by the cache, a corrupt entry dropped. The cache is
    held weakly (the reader lives on it: no cycle keeps a dropped cache alive) and its hooks are looked up at
    each failure (observation wraps ``_backend_failed``)."""
    owner = weakref.ref(cache)

    def failed(key: str, exc: Exception) -> None:
        found = owner()
        if found is not None:
            found._backend_failed(key, exc)
            if isinstance(exc, CodecError):
                found._drop(key)  # unreadable: the next read stores a good value

    return failed
