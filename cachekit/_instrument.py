"""The hooks behind events and metrics, installed on one :class:`~cachekit.Cache` instance at a time.

A cache nobody observes runs exactly the class code: no flag is tested on its hit path. When metrics are on
(:mod:`cachekit.metrics`) or someone listens (:meth:`Cache.on <cachekit.Cache.on>`), the methods
the decorators call through the instance (``_read``, ``_load``, ``_aload``, ``_write``, ``_bump``,
``_backend_failed``) get per-instance wrappers that call the class's method (for ``_read``: the driver's reader
the cache put there) and then count, time and emit. For a
multi-tier driver each tier's ``call`` is wrapped too, to tell which tier served a hit. Removing the hooks
deletes the instance attributes again (and puts back the driver's own hit path, if it has one).

Labels come from the key (``{ns}/resource={r}[/partition=...]/action={a}/...@gens``): the resource and the
action, never an id or a value. Keys of one's own (``cache.set("k", ...)``) have empty resource and action.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import unquote

from ._logging import log_once_per_interval
from ._series import AGGREGATES, FOLD_AT, Counters
from ._types import MISSING
from .breaker import CircuitBreaker
from .scopes import resource_of

if TYPE_CHECKING:
    from .drivers.base import Driver

__all__ = ["EVENTS", "HOOKED", "CacheEvent", "Instrumentation", "ObservedCache", "dispatch", "instrumentation_of",
           "key_labels"]  # fmt: skip

#: The event names of :meth:`Cache.on`.
EVENTS: Final = ("hit", "miss", "set", "invalidate", "error", "breaker")
#: The instance attributes the hooks occupy.
HOOKED: Final = ("_read", "_load", "_aload", "_write", "_bump", "_backend_failed")
_KEY_MEMO_LIMIT: Final = 1024

Listener = Callable[["CacheEvent"], None]


class ObservedCache(Protocol):
    """What the hooks see of a :class:`cachekit.Cache` (the module observes caches; it never imports one)."""

    namespace: str
    driver: Driver

    def _install_read(self) -> None: ...
    def _read(self, key: str) -> Any: ...
    def _load(self, key: str, action: str, loader: Callable[[], Any], ttl: Any = ...) -> Any: ...
    async def _aload(self, key: str, action: str, loader: Callable[[], Awaitable[Any]], ttl: Any = ...) -> Any: ...
    def _write(self, key: str, value: Any, ttl: float | None, max_payload: int | None) -> bool: ...
    def _bump(self, scopes: list[str]) -> int: ...
    def _backend_failed(self, key: str | None, exc: BaseException) -> None: ...


@dataclass(frozen=True, slots=True)
class CacheEvent:
    """What happened, as far as it is known.

    :ivar kind: the event name (``"hit"``, ``"miss"``, ``"set"``, ``"invalidate"``, ``"error"``, ``"breaker"``).
    :ivar namespace: the cache's namespace.
    :ivar resource: the resource of the key (``"users"``), or of the scopes bumped; ``None`` when unknown.
    :ivar action: the read's action (``"get"``, ``"count"``); ``None`` for keys of one's own.
    :ivar tier: the driver (``"memory"``) or the tier that served a hit (``"L1-memory"``).
    :ivar key: the full key (hit, miss, set, error); ``None`` otherwise.
    :ivar duration: seconds the driver call took (hit, miss, set) or the bump took (invalidate).
    :ivar scopes: the scopes an invalidation bumped.
    :ivar error: the exception of an ``"error"``.
    :ivar state: a breaker's new state (``"open"``, ``"half-open"``, ``"closed"``); ``previous`` the old one.
    :ivar breaker: the breaker's backend description.
    """

    kind: str
    namespace: str
    resource: str | None = None
    action: str | None = None
    tier: str | None = None
    key: str | None = None
    duration: float | None = None
    scopes: tuple[str, ...] = ()
    error: BaseException | None = None
    state: str | None = None
    previous: str | None = None
    breaker: str | None = None


def dispatch(listeners: Iterable[Callable[[CacheEvent], None]], event: CacheEvent) -> None:
    """Call each listener; log (rate-limited) and swallow what one raises."""
    for listener in list(listeners):
        try:
            listener(event)
        except Exception as exc:
            name = getattr(listener, "__qualname__", type(listener).__name__)
            log_once_per_interval(
                logging.WARNING, ("event", event.kind, name, type(exc).__name__),
                "cachekit: the %r event callback %s raised %s: %s; ignored (callbacks never fail a read)",
                event.kind, name, type(exc).__name__, exc,
            )




def key_labels(key: str | None, namespace: str) -> tuple[str, str]:
    """``(resource, action)`` of a key of ``namespace``; ``("", "")`` for other keys."""
    prefix = namespace + "/resource="
    if key is None or not key.startswith(prefix):
        return "", ""
    base = key.rpartition("@")[0] or key
    parts = base[len(namespace) + 1 :].split("/")
    resource = unquote(parts[0][len("resource=") :])
    if len(parts) > 1 and parts[1] == "custom":
        return resource, "custom"
    action = next((unquote(p[len("action=") :]) for p in parts[1:] if p.startswith("action=")), "")
    return resource, action


def instrumentation_of(cache: ObservedCache) -> Instrumentation | None:
    """The hooks installed on ``cache``, if any."""
    found = vars(cache).get("_instrumentation")
    return found if isinstance(found, Instrumentation) else None


class Instrumentation:
    """The hooks of one cache and its listeners (``listeners[event]``; metrics need none)."""

    def __init__(self, cache: ObservedCache) -> None:
        self.cache = cache
        self.namespace = cache.namespace
        self.listeners: dict[str, list[Listener]] = {name: [] for name in EVENTS}
        self.metrics = False
        self.fleet = False  # counting for Cache(publish_stats=...) (cachekit.fleet)
        from .drivers.tiered import TieredDriver

        self.tiers: list[Any] = list(cache.driver._tiers) if isinstance(cache.driver, TieredDriver) else []
        self.tier_name = "" if self.tiers else cache.driver.name
        self._local = threading.local()
        self._key_counters: dict[Any, Counters] = {}
        self._breakers: list[tuple[str, CircuitBreaker]] = []

    # -- lifetime --------------------------------------------------------------------------------------------

    @property
    def needed(self) -> bool:
        return self.metrics or self.fleet or any(self.listeners.values())

    def install(self) -> None:
        """Put the wrappers on the instance (again: they capture the class methods in force now)."""
        cache = self.cache
        slots = vars(cache)
        for name in HOOKED:
            slots.pop(name, None)
        self._key_counters.clear()
        slots["_instrumentation"] = self
        cache._install_read()  # the driver's reader, observed below (a memory cache keeps its fused one)
        slots["_read"] = self._observed_read(slots["_read"])
        slots["_backend_failed"] = self._hook_backend_failed(type(cache)._backend_failed)
        slots["_write"] = self._hook_write(type(cache)._write)
        slots["_load"] = self._hook_load(type(cache)._load)
        slots["_aload"] = self._hook_aload(type(cache)._aload)
        slots["_bump"] = self._hook_bump(type(cache)._bump)
        for tier in self.tiers:
            vars(tier)["call"] = self._hook_tier_call(tier)
        if not self._breakers:
            self._breakers = self._find_breakers()
            for _, breaker in self._breakers:
                breaker.add_listener(self._breaker_changed)

    def uninstall(self) -> None:
        """Remove every hook: the cache runs the class code again."""
        slots = vars(self.cache)
        for name in (*HOOKED, "_instrumentation"):
            slots.pop(name, None)
        for tier in self.tiers:
            vars(tier).pop("call", None)
        self.cache._install_read()
        for _, breaker in self._breakers:
            breaker.remove_listener(self._breaker_changed)
        self._breakers = []

    def breakers(self) -> list[tuple[str, CircuitBreaker]]:
        """``(tier, breaker)`` of the cache's driver (one per tier for a multi-tier driver)."""
        return list(self._breakers)

    def _find_breakers(self) -> list[tuple[str, CircuitBreaker]]:
        if self.tiers:
            return [(tier.name, tier.breaker) for tier in self.tiers if isinstance(tier.breaker, CircuitBreaker)]
        own = getattr(self.cache.driver, "breaker", None)
        return [(self.tier_name, own)] if isinstance(own, CircuitBreaker) else []

    # -- series ----------------------------------------------------------------------------------------------

    def counters_of(self, key: str | None, tier: str | None = None) -> Counters:
        """The counters a key's reads count in (memoized per key while the memo is small)."""
        memo_key = key if tier is None else (key, tier)
        found = self._key_counters.get(memo_key)
        if found is None:
            resource, action = key_labels(key, self.namespace)
            found = AGGREGATES.counters_for(self.namespace, resource, action, self.tier_name if tier is None else tier)
            if len(self._key_counters) >= _KEY_MEMO_LIMIT:
                self._key_counters.clear()
            self._key_counters[memo_key] = found
        return found

    # -- the read hooks --------------------------------------------------------------------------------------

    def _observed_read(self, read: Callable[[str], Any]) -> Callable[[str], Any]:
        """``read`` (the cache's reader), counted per key in the metric series and emitted as events.

        Timed when the driver may block (a histogram per tier), or for hit/miss listeners (events carry the
        duration); a reader that never blocks and has no such listener, or counted for fleet stats alone
        (:mod:`cachekit.fleet`: per resource and action), is counted, not timed (a memory get takes
        about a microsecond: two clock reads and a histogram entry would cost a quarter of a hit). Over tiers, the
        tier that served a hit is the one whose ``call`` returned it (see :meth:`_hook_tier_call`), else the
        first: the tiered driver's fast path serves L1 hits without a tier call.
        """
        local, perf, counters_of, emit = self._local, time.perf_counter, self.counters_of, self.emit
        key_counters = self._key_counters
        hit_listeners, miss_listeners = self.listeners["hit"], self.listeners["miss"]
        counted_only = not (self.metrics or any(self.listeners.values()))  # fleet stats alone: no time, no tier
        first = self.tiers[0].name if self.tiers and not counted_only else None
        blocking = self.cache.driver.blocking and not counted_only
        timed = blocking or bool(hit_listeners or miss_listeners) or first is not None
        by_tier = {tier.name: AGGREGATES.call_timings(self.namespace, tier.name, "get") for tier in self.tiers}
        missed = AGGREGATES.call_timings(self.namespace, "", "get") if first is not None else None
        timings = AGGREGATES.call_timings(self.namespace, self.tier_name, "get") if blocking and not first else None
        pending: list[float] = timings.pending if timings is not None else []

        def _read(key: str) -> Any:
            if first is not None:
                local.tier = ""
            if timed:
                start = perf()
                value = read(key)
                elapsed: float | None = perf() - start
            else:
                value = read(key)
                elapsed = None
            if first is not None:
                tier = local.tier or ("" if value is MISSING else first)
                counters = counters_of(key, tier)
                by_tier.get(tier, missed).add(elapsed or 0.0)  # type: ignore[union-attr]
            else:
                counters = key_counters.get(key) or counters_of(key)
                if timings is not None:
                    pending.append(elapsed or 0.0)
                    if len(pending) >= FOLD_AT:
                        timings.fold()
            if value is MISSING:
                counters.misses += 1
                if miss_listeners:
                    emit("miss", key, counters, elapsed)
                return value
            counters.hits += 1
            if hit_listeners:
                emit("hit", key, counters, elapsed)
            return value

        return _read

    def _hook_tier_call(self, tier: Any) -> Callable[[Callable[[Any], Any]], Any]:
        call, local, name = type(tier).call, self._local, tier.name

        def tier_call(operation: Callable[[Any], Any]) -> Any:
            result = call(tier, operation)
            if type(result) is tuple:  # a get_with_expiry hit: (blob, expires_at)
                local.tier = name
            return result

        return tier_call

    def _hook_backend_failed(self, failed: Callable[..., None]) -> Callable[[str | None, BaseException], None]:
        cache = self.cache

        def _backend_failed(key: str | None, exc: BaseException) -> None:
            failed(cache, key, exc)
            counters = self.counters_of(key, getattr(self._local, "tier", None) if self.tiers else None)
            counters.errors += 1
            if self.listeners["error"]:
                self.emit("error", key, counters, None, error=exc)

        return _backend_failed

    # -- the write and load hooks ----------------------------------------------------------------------------

    def _hook_write(self, write: Callable[..., bool]) -> Callable[..., bool]:
        cache, perf = self.cache, time.perf_counter
        timings = AGGREGATES.call_timings(self.namespace, self.tier_name, "set")

        def _write(key: str, value: Any, ttl: float | None, max_payload: int | None) -> bool:
            start = perf()
            stored = write(cache, key, value, ttl, max_payload)
            elapsed = perf() - start
            if stored:
                timings.add(elapsed)
                counters = self.counters_of(key)
                counters.sets += 1
                if self.listeners["set"]:
                    self.emit("set", key, counters, elapsed)
            return stored

        return _write

    def _hook_load(self, load: Callable[..., Any]) -> Callable[..., Any]:
        cache, perf = self.cache, time.perf_counter

        def _load(key: str, action: str, loader: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
            start = perf()
            try:
                return load(cache, key, action, loader, *args, **kwargs)
            finally:
                resource, _ = key_labels(key, self.namespace)
                AGGREGATES.load_timings(self.namespace, resource, action).add(perf() - start)

        return _load

    def _hook_aload(self, aload: Callable[..., Any]) -> Callable[..., Any]:
        cache, perf = self.cache, time.perf_counter

        async def _aload(key: str, action: str, loader: Callable[[], Any], *args: Any, **kwargs: Any) -> Any:
            start = perf()
            try:
                return await aload(cache, key, action, loader, *args, **kwargs)
            finally:
                resource, _ = key_labels(key, self.namespace)
                AGGREGATES.load_timings(self.namespace, resource, action).add(perf() - start)

        return _aload

    def _hook_bump(self, bump: Callable[..., int]) -> Callable[[list[str]], int]:
        cache, perf = self.cache, time.perf_counter

        def _bump(scopes: list[str]) -> int:
            start = perf()
            count = bump(cache, scopes)
            elapsed = perf() - start
            by_resource: dict[str, int] = {}
            for scope in scopes:
                resource = unquote(resource_of(scope))
                by_resource[resource] = by_resource.get(resource, 0) + 1
            for resource, bumped in by_resource.items():
                AGGREGATES.invalidated(self.namespace, resource, bumped)
            if self.listeners["invalidate"]:
                only = next(iter(by_resource)) if len(by_resource) == 1 else None
                self.emit("invalidate", None, None, elapsed, resource=only, scopes=tuple(scopes))
            return count

        return _bump

    # -- events ----------------------------------------------------------------------------------------------

    def _breaker_changed(self, breaker: CircuitBreaker, old: str, new: str) -> None:
        tier = next((name for name, known in self._breakers if known is breaker), None)
        if self.listeners["breaker"]:
            self.emit("breaker", None, None, None, tier=tier, state=new, previous=old, breaker=breaker.name)

    def emit(
        self, kind: str, key: str | None, counters: Counters | None, duration: float | None, **fields: Any
    ) -> None:
        """Build the event and call every listener of ``kind``; a listener that raises is logged, never raised."""
        if counters is not None:
            _, resource, action, tier = counters.labels
            fields.setdefault("resource", resource or None)
            fields.setdefault("action", action or None)
            fields.setdefault("tier", tier or None)
        event = CacheEvent(kind=kind, namespace=self.namespace, key=key, duration=duration, **fields)
        dispatch(self.listeners[kind], event)


_CACHES: weakref.WeakSet[ObservedCache] = weakref.WeakSet()


def caches() -> list[ObservedCache]:
    """Every live :class:`Cache` of the process."""
    return list(_CACHES)
