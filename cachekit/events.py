"""Events: ``cache.on("hit" | "miss" | "set" | "invalidate" | "error" | "breaker", callback)``.

E.g.::

    from cachekit import Cache

    cache = Cache(namespace="app")
    seen = []
    handle = cache.on("miss", seen.append)     # callback(event: CacheEvent)
    cache.get("k")
    seen[0].kind, seen[0].namespace            # ('miss', 'app')
    handle.unsubscribe()

A callback runs in the thread that caused the event, after the operation; one that raises is logged (once per
interval and cause, :mod:`cachekit._logging`) and never fails the read or write. ``subscribe_all`` listens to
every cache of the process, existing and future ones (what :mod:`cachekit.testing`'s recorder uses).

The events are the ones :mod:`cachekit.metrics` counts. A read that failed (a driver error, a corrupt entry) is
an ``"error"`` and then a ``"miss"``. ``get_many`` and ``set_many`` batches are not reported one by one.
A cache that nobody listens to (and with metrics off) has no hooks at all: see :mod:`cachekit._instrument`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ._instrument import (
    _CACHES,
    EVENTS,
    CacheEvent,
    Instrumentation,
    ObservedCache,
    caches,
    dispatch,
    instrumentation_of,
)
from .errors import ConfigurationError

__all__ = ["EVENTS", "CacheEvent", "Subscription", "dispatch", "listen", "register", "subscribe_all"]

_lock = threading.RLock()
_global: dict[str, list[Callable[[CacheEvent], None]]] = {name: [] for name in EVENTS}
_metrics_on = False


class Subscription:
    """The handle :meth:`cachekit.Cache.on` returns: :meth:`unsubscribe` (or leave a ``with`` block) to stop."""

    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop: Callable[[], None] | None = stop

    def unsubscribe(self) -> None:
        """Stop the callback (calling it twice is harmless)."""
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()

    @property
    def active(self) -> bool:
        return self._stop is not None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unsubscribe()


def _check_event(event: object, callback: object) -> str:
    if event not in EVENTS:
        raise ConfigurationError(f"unknown cache event {event!r}; the events are {', '.join(EVENTS)}")
    if not callable(callback):
        raise ConfigurationError(f"the callback of {event!r} must be callable; got {callback!r}")
    return str(event)


def listen(cache: ObservedCache, event: str, callback: Callable[[CacheEvent], None]) -> Subscription:
    """``cache.on(event, callback)`` (:meth:`cachekit.Cache.on`): call ``callback`` on every ``event`` of ``cache``."""
    name = _check_event(event, callback)
    with _lock:
        inst = _hooks(cache)
        inst.listeners[name].append(callback)
        inst.install()  # the read hook differs with and without hit/miss listeners

    def stop() -> None:
        with _lock:
            if callback in inst.listeners[name]:
                inst.listeners[name].remove(callback)
            _settle(cache)

    return Subscription(stop)


def subscribe_all(event: str, callback: Callable[[CacheEvent], None]) -> Subscription:
    """Call ``callback`` on every ``event`` of every cache of the process, existing and created later."""
    name = _check_event(event, callback)
    with _lock:
        _global[name].append(callback)
        for cache in caches():
            inst = instrumentation_of(cache)
            if inst is None:
                _hooks(cache)  # a new instrumentation starts with the global listeners
            elif callback not in inst.listeners[name]:
                inst.listeners[name].append(callback)
                inst.install()

    def stop() -> None:
        with _lock:
            if callback in _global[name]:
                _global[name].remove(callback)
            for cache in caches():
                inst = instrumentation_of(cache)
                if inst is not None and callback in inst.listeners[name]:
                    inst.listeners[name].remove(callback)
                _settle(cache)

    return Subscription(stop)


def register(cache: ObservedCache) -> None:
    """Called by ``Cache.__init__``: remember the cache, and hook it when metrics or global listeners need it."""
    _CACHES.add(cache)
    if _metrics_on or any(_global.values()):
        with _lock:
            _hooks(cache)


def set_metrics(on: bool) -> None:
    """Turn the metric hooks on or off on every cache (used by :mod:`cachekit.metrics`)."""
    global _metrics_on
    with _lock:
        _metrics_on = on
        for cache in caches():
            if on:
                _hooks(cache)
            else:
                inst = instrumentation_of(cache)
                if inst is not None:
                    inst.metrics = False
                    _settle(cache)


def count_for_fleet(cache: ObservedCache, on: bool) -> None:
    """Keep ``cache``'s per resource/action counters while it publishes fleet stats (:mod:`cachekit.fleet`)."""
    with _lock:
        if on:
            _hooks(cache).fleet = True
            return
        inst = instrumentation_of(cache)
        if inst is not None:
            inst.fleet = False
            _settle(cache)


def reinstall() -> None:
    """Re-create every cache's hooks (after the class methods were replaced, e.g. by ``cachekit_disabled``)."""
    with _lock:
        for cache in caches():
            inst = instrumentation_of(cache)
            if inst is not None:
                inst.install()


def _hooks(cache: ObservedCache) -> Instrumentation:
    inst = instrumentation_of(cache)
    if inst is None:
        inst = Instrumentation(cache)
        for name, listeners in _global.items():
            inst.listeners[name].extend(listeners)
        inst.metrics = _metrics_on
        inst.install()
    elif _metrics_on and not inst.metrics:
        inst.metrics = True
        inst.install()  # hooked for fleet stats alone, which count without timing: metrics time reads
    return inst


def _settle(cache: ObservedCache) -> None:
    inst = instrumentation_of(cache)
    if inst is None:
        return
    if inst.needed:
        inst.install()
    else:
        inst.uninstall()


def hooked_caches() -> list[tuple[ObservedCache, Any]]:
    """``(cache, instrumentation)`` of every hooked cache (exporters read gauges through them)."""
    found = []
    for cache in caches():
        inst = instrumentation_of(cache)
        if inst is not None:
            found.append((cache, inst))
    return found
