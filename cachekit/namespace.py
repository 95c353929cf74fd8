"""The namespace: one driver, one codec, policies, stats and single-flight, behind a small cache API.

:class:`Cache` is what decorated reads talk to. It owns every rule that holds for all drivers:

* reads fail open: a driver error or a corrupt blob is a miss (counted, logged once per cause, the bad entry
  dropped), so a broken cache never breaks a read;
* concurrent misses of one key call the loader once (in-process single-flight);
* a write's invalidation is retried; if it still fails, the namespace stops serving and storing entries until
  the invalidation succeeds, so a cache that comes back never serves what the write changed;
* a result loaded while a write ran is not stored (a generation counter), so a slow read cannot store a
  value from before the write after the write's invalidation.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from ._types import DEFAULT, MISSING, TTL, Clock, check_key, normalize_ttl
from .codecs import DEFAULT_MAX_VALUE_BYTES, HEADER_SIZE, Codec
from .drivers import Driver, create_driver, resolve_driver_class
from .errors import (
    CacheWarning,
    CodecError,
    ConfigurationError,
    CorruptEntryError,
    SerializationError,
    UncacheableValueWarning,
)
from .keys import Invalidation, KeySpec, format_key, get_key_resolver, invalidation_prefixes
from .policies import MethodPolicy, parse_method_policies
from .stats import CacheStats

__all__ = ["DEFAULT_TTL", "Cache", "Namespace"]

logger = logging.getLogger("cachekit")

#: The TTL used when none is given: five minutes, for every driver.
DEFAULT_TTL = 300.0
_DEFAULT_NAMESPACE = "cachekit"
_CODEC_OPTIONS = ("enable_compression", "compression", "compression_threshold", "compression_level",
                  "serializer", "deserializer", "max_value_bytes", "signing_key", "verify_keys")
_NAMESPACE_OPTIONS = (*_CODEC_OPTIONS, "case_sensitive", "enable_stats")
#: Options in ``config`` that belong to the namespace (codec, keys, stats), not to the driver.
NAMESPACE_OPTIONS = frozenset(_NAMESPACE_OPTIONS)
_MISS_COUNTER_LIMIT = 10_000
_FLUSH_INTERVAL = 1.0  # seconds between retries of a failed invalidation
_LOGGED_CAUSES_LIMIT = 256


class _Flight:
    """One in-progress load that concurrent missers of the same key wait for."""

    __slots__ = ("error", "event", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = MISSING
        self.error: BaseException | None = None

    def wait(self) -> Any:
        self.event.wait()
        if self.error is not None:
            raise self.error
        return self.value


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
        ``compression_level``, ``case_sensitive`` (default ``True``), ``enable_stats`` (default ``True``).
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
        **unknown_options: Any,
    ) -> None:
        if unknown_options:
            raise ConfigurationError(
                f"Cache got unknown options {sorted(unknown_options)}; driver options go in config={{...}}"
            )
        self.namespace = _check_namespace(namespace)
        self.prefix = self.namespace + "/"
        self.ttl = normalize_ttl(ttl)
        self._clock: Clock = clock or time.time
        if not isinstance(config, (Mapping, type(None))):
            raise ConfigurationError(f"config must be a dict of options; got {config!r}")
        options = dict(config or {})
        namespace_options = {k: options.pop(k) for k in _NAMESPACE_OPTIONS if k in options}
        self.driver = _build_driver(driver, drivers, options, promote_on_hit, strategy, self._clock)
        self.codec = None if self.driver.stores_objects else _build_codec(namespace_options, self._clock)
        self.case_sensitive = bool(namespace_options.get("case_sensitive", True))
        self.stats_enabled = bool(namespace_options.get("enable_stats", True))
        self._policies = parse_method_policies(method_policies)
        self._default_policy = MethodPolicy()
        self.disabled_actions = frozenset(a for a, p in self._policies.items() if not p.enabled)
        self._single_flight = bool(single_flight)
        self._lock_timeout = _check_lock(distributed_lock, lock_timeout, self.driver)
        self._retry_attempts = _check_retries(retry_attempts, retry_delay)
        self._retry_delay = float(retry_delay)
        # Bound once: the hit path should not look these up per call.
        self._driver_get = self.driver.get
        self._decode = self.codec.decode if self.codec is not None else None
        self._flights: dict[str, _Flight] = {}
        self._flights_lock = threading.Lock()
        self._async_flights: dict[tuple[int, str], asyncio.Task[Any]] = {}
        self._miss_counts: OrderedDict[str, int] = OrderedDict()
        self._logged_causes: set[tuple[str, str]] = set()
        self._pending_invalidations: list[str] = []
        self._next_flush_at = 0.0
        self._generation = 0
        # Keys already computed by decorated reads, per (read, resource, argument): kept on the namespace so a
        # discarded Cache takes its memo with it. Bounded by the decorators.
        self._key_memo: dict[Any, str] = {}
        self.hits = self.misses = self.sets = self.deletes = self.errors = 0

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
        """The key a read uses: from a :class:`KeySpec`, or from an action and its arguments.

        E.g.::

            cache.key_for("count", resource="users", partition="by_region", partition_values={"region": "eu"})
        """
        if isinstance(spec, str):
            if not resource:
                raise ConfigurationError("key_for(action, ...) needs resource=, the resource name")
            merged = dict(params or {})
            if partition is not None:
                merged["partition"], merged["partition_values"] = partition, partition_values
            spec = get_key_resolver(spec)(resource, spec, merged)
        return format_key(self.namespace, spec, case_sensitive=self.case_sensitive)

    def _full_key(self, key: str) -> str:
        key = check_key(key)
        if key.startswith(self.prefix):
            return key  # from key_for: already folded where case_sensitive=False
        return self.prefix + (key if self.case_sensitive else key.lower())

    # -- the key/value API -----------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key`` (a key from :meth:`key_for`, or your own, which is put in the namespace).

        Returns ``default`` on a miss; a cached ``None`` is a hit and returns ``None``. Never raises for a
        broken backend: that is a miss, counted in ``stats().errors``.
        """
        value = self._read(self._full_key(key))
        return default if value is MISSING else value

    def set(self, key: str, value: Any, ttl: TTL = DEFAULT) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the namespace's TTL).

        Returns whether it was stored: ``False`` when the value cannot be serialized (with an
        :class:`~cachekit.errors.UncacheableValueWarning`) or the driver failed (counted in stats).
        """
        seconds = self.ttl if ttl is DEFAULT else normalize_ttl(ttl)
        return self._write(self._full_key(key), value, seconds, None)

    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was present. Driver errors propagate (an explicit delete must work)."""
        removed = self.driver.delete(self._full_key(key))
        self.deletes += removed
        self._generation += 1
        return removed

    def clear(self, prefix: str = "") -> int:
        """Remove this namespace's keys (those under ``prefix`` within it); other namespaces are untouched."""
        return self._clear_prefixes([self._full_prefix(prefix)])

    def keys(self, prefix: str = "") -> list[str]:
        """This namespace's stored keys (under ``prefix`` within it)."""
        return self.driver.keys(self._full_prefix(prefix))

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
        if self._pending_invalidations and not self._flush_pending():
            self.misses += len(wanted)
            return {}
        try:
            blobs = self.driver.get_many(full)
        except Exception as exc:
            self._read_failed(None, exc)
            return {}
        found: dict[str, Any] = {}
        for key, full_key, blob in zip(wanted, full, blobs, strict=True):
            value = self._decoded(full_key, blob)
            if value is not MISSING:
                found[key] = value
        hits = sum(1 for key in wanted if key in found)
        self.hits += hits
        self.misses += len(wanted) - hits
        return found

    def set_many(self, items: Mapping[str, Any], ttl: TTL = DEFAULT) -> int:
        """Store every ``key -> value``; return how many were stored."""
        seconds = self.ttl if ttl is DEFAULT else normalize_ttl(ttl)
        return sum(self._write(self._full_key(k), v, seconds, None) for k, v in items.items())

    def invalidate(self, invalidation: Invalidation) -> int:
        """Clear what one write changed: its items, the resource's aggregates, the partitions it touched."""
        prefixes = invalidation_prefixes(self.namespace, invalidation, case_sensitive=self.case_sensitive)
        return self._clear_prefixes(prefixes)

    def invalidate_resource(self, resource: str) -> int:
        """Clear every entry of ``resource`` (and nothing of resources whose names merely start the same)."""
        return self.invalidate(Invalidation(resource, whole=True))

    def stats(self) -> CacheStats:
        """A snapshot of this namespace's counters and its driver's facts (entries, bytes, evictions)."""
        try:
            details = self.driver.stats()
        except Exception as exc:
            details = {"error": f"{type(exc).__name__}: {exc}"}
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

    def reset_stats(self) -> None:
        """Zero the hit, miss, set, delete and error counters."""
        self.hits = self.misses = self.sets = self.deletes = self.errors = 0

    def policy(self, action: str) -> MethodPolicy:
        """The policy in force for ``action``."""
        return self._policies.get(action, self._default_policy)

    def close(self) -> None:
        """Close the driver (connections, files, background threads)."""
        self.driver.close()

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Cache namespace={self.namespace!r} driver={self.driver!r}>"

    # -- the read path (used by the decorators) --------------------------------------------------------------

    def _read(self, key: str) -> Any:
        """The cached value or MISSING; never raises for a driver or codec failure (fail open)."""
        if self._pending_invalidations and not self._flush_pending():
            self.misses += 1
            return MISSING
        try:
            raw: Any = self._driver_get(key)
        except Exception as exc:
            self._read_failed(key, exc)
            return MISSING
        if raw is MISSING:
            self.misses += 1
            return MISSING
        decode = self._decode
        if decode is not None:
            try:
                raw = decode(raw)
            except CodecError as exc:
                self._read_failed(key, exc)
                self._drop(key)
                return MISSING
            if raw is MISSING:  # expired by its envelope
                self.misses += 1
                return MISSING
        self.hits += 1
        return raw

    def _decoded(self, key: str, raw: Any) -> Any:
        if raw is MISSING or self._decode is None:
            return raw
        try:
            return self._decode(raw)
        except CodecError as exc:
            self._read_failed(key, exc)
            self._drop(key)
            return MISSING

    def _load(self, key: str, action: str, loader: Callable[[], Any], ttl: Any = DEFAULT) -> Any:
        """After a miss: call ``loader`` once for all concurrent missers of ``key`` and store the result."""
        if not self._single_flight:
            return self._load_and_store(key, action, loader, ttl)
        with self._flights_lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            return flight.wait()
        try:
            # Another leader may have stored the value between our miss and our taking the lead.
            value = self._quiet_read(key)
            if value is MISSING:
                if self._lock_timeout is None:
                    value = self._load_and_store(key, action, loader, ttl)
                else:
                    value = self._load_across_processes(key, action, loader, ttl)
            flight.value = value
            return value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._flights_lock:
                del self._flights[key]
            flight.event.set()

    def _load_across_processes(self, key: str, action: str, loader: Callable[[], Any], ttl: Any) -> Any:
        """Load under the backend's lock; without it, wait for the holder's result (or the lock) a while."""
        timeout = self._lock_timeout or 0.0
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            token = self._try_lock(key, timeout)
            if token is not None:
                try:
                    value = self._quiet_read(key)  # the previous holder may have stored it just now
                    return value if value is not MISSING else self._load_and_store(key, action, loader, ttl)
                finally:
                    self._unlock(key, token)
            if time.monotonic() >= deadline:
                return self._load_and_store(key, action, loader, ttl)  # the holder is too slow: load anyway
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
            value = self._quiet_read(key)
            if value is not MISSING:
                return value

    def _try_lock(self, key: str, timeout: float) -> str | None:
        """A lock token, ``None`` when another process holds the lock, ``""`` when locking failed (go ahead)."""
        try:
            return self.driver.acquire_lock(key, timeout)
        except Exception as exc:
            self._read_failed(key, exc)
            return ""

    def _unlock(self, key: str, token: str) -> None:
        if token:
            try:
                self.driver.release_lock(key, token)
            except Exception as exc:  # the lock expires by itself
                logger.debug("cachekit: could not release the lock of %r: %s", key, exc)

    def _load_and_store(self, key: str, action: str, loader: Callable[[], Any], ttl: Any) -> Any:
        generation = self._generation
        value = loader()
        self._after_load(key, action, value, generation, ttl)
        return value

    async def _aload(
        self, key: str, action: str, loader: Callable[[], Awaitable[Any]], ttl: Any = DEFAULT
    ) -> Any:
        """The async twin of :meth:`_load`; blocking drivers run in a worker thread.

        The load runs in its own task that every caller awaits through :func:`asyncio.shield`, so cancelling one
        caller (a client that went away) cancels neither the load nor the other callers waiting for it.
        """
        loop = asyncio.get_running_loop()
        flight_key = (id(loop), key)
        task = self._async_flights.get(flight_key) if self._single_flight else None
        if task is None:
            task = loop.create_task(self._aload_and_store(key, action, loader, ttl))
            task.add_done_callback(_retrieve_exception)
            if self._single_flight:
                self._async_flights[flight_key] = task
                task.add_done_callback(lambda _: self._async_flights.pop(flight_key, None))
        return await asyncio.shield(task)

    async def _aload_and_store(
        self, key: str, action: str, loader: Callable[[], Awaitable[Any]], ttl: Any
    ) -> Any:
        generation = self._generation
        value = await loader()
        if self.driver.blocking:
            await asyncio.to_thread(self._after_load, key, action, value, generation, ttl)
        else:
            self._after_load(key, action, value, generation, ttl)
        return value

    def _after_load(self, key: str, action: str, value: Any, generation: int, ttl: Any = DEFAULT) -> None:
        """Store a loaded value unless a write ran meanwhile or the policy says not yet."""
        policy = self._policies.get(action, self._default_policy)
        if generation != self._generation or not self._ready_to_store(key, policy):
            return
        if value is None and policy.none_ttl is not DEFAULT:
            ttl = policy.none_ttl
        elif ttl is DEFAULT:
            ttl = self.ttl if policy.ttl is DEFAULT else policy.ttl
        self._write(key, value, ttl, policy.max_payload_bytes)

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

    def _write(self, key: str, value: Any, ttl: float | None, max_payload: int | None) -> bool:
        if ttl == 0 or (self._pending_invalidations and not self._flush_pending()):
            return False
        blob: Any = value
        if self.codec is not None:
            try:
                blob = self.codec.encode(value, ttl)
            except SerializationError as exc:
                warnings.warn(f"{exc}; returned uncached (key {key!r})", UncacheableValueWarning, stacklevel=4)
                return False
            if max_payload is not None and len(blob) - HEADER_SIZE > max_payload:
                return False
        try:
            self.driver.set(key, blob, ttl)
        except Exception as exc:
            self._read_failed(key, exc)
            return False
        self.sets += 1
        return True

    def _quiet_read(self, key: str) -> Any:
        if self._pending_invalidations and not self._flush_pending():
            return MISSING
        try:
            return self._decoded(key, self._driver_get(key))
        except Exception:
            return MISSING

    def _drop(self, key: str) -> None:
        try:
            self.driver.delete(key)
        except Exception as exc:
            logger.debug("cachekit: could not drop corrupt entry %r: %s", key, exc)

    def _read_failed(self, key: str | None, exc: BaseException) -> None:
        self.errors += 1
        cause = (type(exc).__name__, type(self.driver).__name__)
        if cause in self._logged_causes:
            logger.debug("cachekit: %s failed for %r: %s", self.driver.name, key, exc)
            return
        if len(self._logged_causes) < _LOGGED_CAUSES_LIMIT:
            self._logged_causes.add(cause)
        kind = "corrupt entry dropped" if isinstance(exc, CorruptEntryError) else "driver error"
        logger.warning(
            "cachekit: %s on %s (namespace %r, key %r): %s; reading through to the source. "
            "Further %s errors are logged at DEBUG.",
            kind, self.driver.name, self.namespace, key, exc, cause[0],
        )

    # -- invalidation ----------------------------------------------------------------------------------------

    def _clear_prefixes(self, prefixes: list[str]) -> int:
        self._generation += 1
        # While an earlier invalidation is still pending the backend is known to be failing: try once, queue.
        attempts = 1 if self._pending_invalidations else self._retry_attempts
        for attempt in range(attempts):
            try:
                removed = self.driver.clear_many(prefixes)
            except Exception as exc:
                if attempt + 1 < attempts:
                    time.sleep(self._retry_delay * 2**attempt)
                    continue
                self._invalidation_failed(prefixes, exc)
                return 0
            self.deletes += removed
            return removed
        return 0  # pragma: no cover - the loop always returns

    def _invalidation_failed(self, prefixes: list[str], exc: BaseException) -> None:
        self.errors += 1
        self._pending_invalidations.extend(p for p in prefixes if p not in self._pending_invalidations)
        logger.error(
            "cachekit: invalidation on %s failed after %d attempts (%s); namespace %r bypasses the cache until "
            "it succeeds, so no stale entry is served",
            self.driver.name, self._retry_attempts, exc, self.namespace,
        )

    def _flush_pending(self) -> bool:
        """Retry invalidations that failed earlier; True when none is left.

        At most one retry per ``_FLUSH_INTERVAL`` seconds: in between, reads and writes bypass the cache without
        touching a backend that is known to be failing, so an outage does not cost every read a timeout.
        """
        now = self._clock()
        if now < self._next_flush_at:
            return False
        pending = list(self._pending_invalidations)
        try:
            self.driver.clear_many(pending)
        except Exception:
            self._next_flush_at = now + _FLUSH_INTERVAL
            return False
        self._pending_invalidations = [p for p in self._pending_invalidations if p not in pending]
        return not self._pending_invalidations


Namespace = Cache


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    # Every caller may have been cancelled; mark a failed load's exception as seen so asyncio does not warn.
    if not task.cancelled():
        task.exception()


# -- construction helpers ---------------------------------------------------------------------------------------


def _check_namespace(namespace: str | None) -> str:
    if namespace is None:
        return _DEFAULT_NAMESPACE
    if not isinstance(namespace, str) or not namespace.strip() or "/" in namespace or namespace.startswith("~"):
        raise ConfigurationError(
            f"namespace must be a non-empty string without '/' and not starting with '~' (reserved), such as "
            f"'users' (a '/' would let one namespace contain another); got {namespace!r}"
        )
    return namespace.strip()


def _check_lock(enabled: object, timeout: object, driver: Driver) -> float | None:
    if not isinstance(enabled, bool):
        raise ConfigurationError(f"distributed_lock must be True or False; got {enabled!r}")
    if not enabled:
        return None
    if not driver.supports_locks:
        raise ConfigurationError(
            f"distributed_lock=True needs a driver with cross-process locks (redis, or tiers including redis); "
            f"{driver.name!r} has none"
        )
    seconds = normalize_ttl(timeout, what="lock_timeout")
    if not seconds:
        raise ConfigurationError(f"lock_timeout must be > 0 seconds; got {timeout!r}")
    return seconds


def _check_retries(attempts: int, delay: float) -> int:
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ConfigurationError(f"retry_attempts must be a whole number >= 1; got {attempts!r}")
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise ConfigurationError(f"retry_delay must be seconds >= 0; got {delay!r}")
    return attempts


def _build_codec(options: Mapping[str, Any], clock: Clock) -> Codec:
    compress = options.get("enable_compression", False)
    if not isinstance(compress, bool):
        raise ConfigurationError(f"enable_compression must be True or False; got {compress!r}")
    if not compress and ("compression_threshold" in options or "compression" in options):
        warnings.warn(
            "compression options have no effect without enable_compression=True", CacheWarning, stacklevel=4
        )
    return Codec(
        options.get("serializer"),
        deserializer=options.get("deserializer"),
        compression=options.get("compression", "gzip"),
        compression_threshold=options.get("compression_threshold", 1024) if compress else None,
        compression_level=options.get("compression_level", 1),
        clock=clock,
        max_value_bytes=options.get("max_value_bytes", DEFAULT_MAX_VALUE_BYTES),
        signing_key=options.get("signing_key"),
        verify_keys=options.get("verify_keys", ()),
    )


def _build_driver(
    driver: str | Driver | None,
    tiers: Sequence[Mapping[str, Any] | Driver] | None,
    options: dict[str, Any],
    promote_on_hit: bool,
    strategy: str,
    clock: Clock,
) -> Driver:
    if tiers is not None:
        if options:
            raise ConfigurationError(
                f"with drivers=[...] each tier takes its own 'config'; move {sorted(options)} into a tier"
            )
        from .drivers.tiered import Tier, TieredDriver

        built = [_build_tier(i, tier, clock, Tier) for i, tier in enumerate(tiers)]
        return TieredDriver(built, promote_on_hit=promote_on_hit, strategy=strategy, clock=clock)
    if isinstance(driver, Driver):
        if options:
            raise ConfigurationError(
                f"driver options {sorted(options)} only apply when the driver is given by name; "
                "configure the driver instance itself"
            )
        return driver
    if driver is None:
        raise ConfigurationError("driver is None: name one such as 'memory', or 'null' to turn caching off")
    if not isinstance(driver, str):
        raise ConfigurationError(f"driver must be a name such as 'memory' or a Driver instance; got {driver!r}")
    return _create(driver, options, clock)


def _create(name: str, options: Mapping[str, Any], clock: Clock) -> Driver:
    cls = resolve_driver_class(name)
    kwargs = dict(options)
    if "clock" in inspect.signature(cls).parameters:
        kwargs.setdefault("clock", clock)
    try:
        return create_driver(name, **kwargs)
    except TypeError as exc:
        accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "clock")]
        raise ConfigurationError(f"bad option for the {name!r} driver ({exc}); it accepts {accepted}") from exc


def _build_tier(index: int, tier: Mapping[str, Any] | Driver, clock: Clock, tier_cls: Any) -> Any:
    if isinstance(tier, Driver):
        return tier_cls(tier)
    if not isinstance(tier, Mapping) or "driver" not in tier:
        raise ConfigurationError(f"drivers[{index}] must be a Driver or a dict with a 'driver' key; got {tier!r}")
    unknown = sorted(set(tier) - {"driver", "ttl", "config", "name"})
    if unknown:
        raise ConfigurationError(f"drivers[{index}] has unknown keys {unknown}; use driver, ttl, config, name")
    misplaced = sorted(set(tier.get("config") or {}) & NAMESPACE_OPTIONS)
    if misplaced:
        raise ConfigurationError(
            f"drivers[{index}] config has {misplaced}, which apply to the whole cache (every tier stores the same "
            "blobs): move them to the top-level config=, e.g. CachePlugin(drivers=[...], config={...})"
        )
    inner = tier["driver"]
    built = inner if isinstance(inner, Driver) else _create(str(inner), dict(tier.get("config") or {}), clock)
    return tier_cls(built, ttl=normalize_ttl(tier.get("ttl"), what=f"drivers[{index}]['ttl']"), name=tier.get("name"))
