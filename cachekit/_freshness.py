"""Freshness policies (issue 21): stale-while-revalidate, early refresh (XFetch) and stale-if-error.

An action with any of them stores, beside the plain entry (the value under its key, with the logical TTL, read by
the plain hit path exactly as without the policies), a *record* under the sibling key (:func:`sibling`):
``(MARK, expires_at, delta, value)``, where ``expires_at`` is the logical expiry (wall clock, ``0.0``: never)
and ``delta`` the seconds the load took. The driver keeps the record for ``ttl + max(stale_while_revalidate,
stale_if_error)``. A hit never looks at it: only a miss of the plain entry does (``Cache._load``/``_aload``), and
decides from it, never from the driver's TTL: still fresh (the plain entry left early: XFetch, an eviction) or
expired within ``stale_while_revalidate``, the value is returned and one background refresh starts; expired
within ``stale_if_error``, it is the value returned if the load raises. With ``early_refresh`` the plain entry's
TTL is shortened by XFetch's ``delta * beta * -ln(rand())``, drawn when it is stored.

**Why no policy ever serves an invalidated value.** A read looks only at the key rendered with the *current*
generations of its scopes (:mod:`cachekit.generations`). A write bumps them: every entry stored before it is
left under a key with older generations, which no read computes again. So whatever this module finds beside the
read's key was stored after the last bump this process knows of: *expired*, maybe, never *invalidated*. A
refresh stores under the key it was started for; if a write bumps meanwhile, the refreshed value lands under a
key no later read computes, exactly like a plain load (docs/architecture.md, "The race").

Everything runs on the namespace's own state (:class:`FreshState`, ``cache._fresh``); no hit comes here, but of a
callable with policies of its own (``@cached(stale_while_revalidate=...)``), whose hit is a plain read.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import math
import os
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from ._flight import Flights, _try_lock, _unlock, load_under_lock
from ._types import DEFAULT, MISSING
from .codecs._typed_blob import TypedBlob
from .errors import ConfigurationError, CorruptEntryError

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "FIELDS", "MARK", "FreshCounts", "FreshState", "Freshness", "check_freshness", "record_of", "resource_of",
    "sibling",
]

logger = logging.getLogger("cachekit")

#: The first item of every freshness record.
MARK: Final = "~cachekit-fresh/1"
#: The option names, in ``@cached(...)`` and ``method_policies``.
FIELDS: Final = ("stale_while_revalidate", "stale_if_error", "early_refresh", "early_refresh_beta")
#: Background refreshes at most in flight (or queued) per namespace; past it a read skips starting one (the next
#: read past expiry tries again).
MAX_REFRESHES: Final = 256
#: Threads of the process-wide pool that runs sync background refreshes.
REFRESH_WORKERS: Final = 4
_LOGGED_LIMIT = 1024
_INF = math.inf
_log = math.log
_random = random.random


@dataclass(frozen=True, slots=True)
class Freshness:
    """The freshness policy of one action (see the module docstring).

    :param stale_while_revalidate: seconds after expiry during which a read returns the expired value at once
        and one background refresh reloads it.
    :param stale_if_error: seconds after expiry during which a failing load returns the expired value instead.
    :param early_refresh: refresh a hit before expiry with the XFetch probability (``now - delta * beta *
        ln(rand()) >= expiry``, ``delta`` the measured load time).
    :param beta: XFetch's ``beta`` (> 0; 1.0 by default; larger refreshes earlier).
    """

    stale_while_revalidate: float = 0.0
    stale_if_error: float = 0.0
    early_refresh: bool = False
    beta: float = 1.0

    @property
    def window(self) -> float:
        """How long after its logical expiry a record is kept."""
        return max(self.stale_while_revalidate, self.stale_if_error)


def _seconds(where: str, value: object) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{where} must be a finite number of seconds >= 0 (or a timedelta); got {value!r}")
    return float(value)


def check_freshness(where: str, options: Mapping[str, object]) -> Freshness | None:
    """The :class:`Freshness` of ``options`` (a mapping of :data:`FIELDS`), ``None`` when every policy is off.

    :raises ConfigurationError: a value of the wrong type or range, named with ``where`` (e.g.
        ``method_policies['get']``).
    """
    swr = _seconds(f"{where}['stale_while_revalidate']", options.get("stale_while_revalidate", 0.0))
    sie = _seconds(f"{where}['stale_if_error']", options.get("stale_if_error", 0.0))
    early = options.get("early_refresh", False)
    if not isinstance(early, bool):
        raise ConfigurationError(f"{where}['early_refresh'] must be True or False; got {early!r}")
    beta = options.get("early_refresh_beta", 1.0)
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
        raise ConfigurationError(f"{where}['early_refresh_beta'] must be a finite number > 0; got {beta!r}")
    if not early and beta != 1.0:
        raise ConfigurationError(f"{where}['early_refresh_beta'] is set but early_refresh is not True")
    if not (swr or sie or early):
        return None
    return Freshness(swr, sie, early, float(beta))


def sibling(key: str) -> str:
    """The key of the record beside the plain entry ``key``: the same base and generations, one segment more
    (``.../{hash}/~stale@{generations}``), so it is invalidated with it and listed as current or orphaned alike."""
    head, at, generations = key.rpartition("@")
    return f"{head}/~stale{at}{generations}" if at else f"{key}/~stale"


def resource_of(key: str) -> str:
    """The (URL-quoted) resource of a read's key, for the counters of a namespace policy."""
    return key.partition("/resource=")[2].partition("/")[0]


def record_of(stored: Any) -> tuple[float, float, Any] | None:
    """``(expires_at, delta, value)`` of a stored record, ``None`` for ``MISSING``.

    :raises CorruptEntryError: ``stored`` is not a record this module wrote (stored bytes are untrusted).
    """
    if stored is MISSING:
        return None
    if (type(stored) is tuple or type(stored) is list) and len(stored) == 4 and stored[0] == MARK:
        expires_at, delta = stored[1], stored[2]
        if type(expires_at) is float and type(delta) is float and 0.0 <= expires_at < _INF and 0.0 <= delta < _INF:
            return expires_at, delta, stored[3]
    raise CorruptEntryError("not a cachekit freshness record (wrong shape, mark or numbers): dropped")


class FreshCounts:
    """What the policies did for one (resource, action) of a namespace."""

    __slots__ = ("early_refreshes", "refreshes_failed", "refreshes_started", "stale_on_error", "stale_served")

    def __init__(self) -> None:
        self.stale_served = self.stale_on_error = self.refreshes_started = self.refreshes_failed = 0
        self.early_refreshes = 0

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return {name: getattr(self, name) for name in sorted(self.__slots__)}


# -- the sync refresh pool: cachekit's own, bounded, started on first use, replaced in a forked child ---------------

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _refresh_pool() -> ThreadPoolExecutor:
    global _pool
    pool = _pool
    if pool is None:
        with _pool_lock:
            pool = _pool
            if pool is None:
                pool = _pool = ThreadPoolExecutor(REFRESH_WORKERS, thread_name_prefix="cachekit-refresh")
    return pool


def _forget_pool_after_fork() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


Loader = Callable[[], Any]


class FreshState:
    """A namespace's freshness policies per action, its counters, flights and background refreshes."""

    @classmethod
    def of(cls, cache: Any, policies: Mapping[str, Any]) -> FreshState:
        """The state of ``cache`` with the freshness of its method policies (``MethodPolicy`` per action)."""
        return cls(cache, {
            action: fresh for action, policy in policies.items()
            if policy.enabled and (fresh := policy.freshness(action)) is not None
        })

    def __init__(self, cache: Any, policies: Mapping[str, Freshness]) -> None:
        # Held weakly: the namespace holds this state, and a cycle would keep a dropped Cache (and its driver's
        # memory, counted by the metrics) alive until the cycle collector runs.
        self._cache = weakref.ref(cache)
        #: The namespace's policies (``method_policies``) per action; ``@cached(...)`` options come with the call.
        self.policies = dict(policies)
        self.counts: dict[tuple[str, str], FreshCounts] = {}
        self.lock = threading.Lock()
        #: The foreground loads (single flight as the cache's, apart: a record, not the value, decides them).
        self.flights = Flights(cache._flights.enabled)
        self.refreshing: set[str] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self._logged: set[tuple[str, str, str]] = set()

    @property
    def cache(self) -> Any:
        """The namespace (a :class:`~cachekit.Cache`)."""
        cache = self._cache()
        if cache is None:
            raise ReferenceError("the Cache of these freshness policies is gone")
        return cache

    # -- counters and logging ------------------------------------------------------------------------------------

    def counter(self, resource: str, action: str) -> FreshCounts:
        """The counters of ``resource``/``action`` (made on first use)."""
        counts = self.counts.get((resource, action))
        if counts is None:
            counts = self.counts.setdefault((resource, action), FreshCounts())
        return counts

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{"resource/action": counters}``, for ``stats().details["freshness"]``."""
        return {f"{resource}/{action}": counts.as_dict() for (resource, action), counts in list(self.counts.items())}

    def _log_error(self, resource: str, action: str, exc: BaseException, what: str) -> None:
        """Log a source failure once per resource, action and exception type; later ones at debug."""
        mark = (resource, action, type(exc).__qualname__)
        if mark in self._logged or len(self._logged) >= _LOGGED_LIMIT:
            logger.debug("cachekit: %s of %s/%s failed again: %r", what, resource, action, exc)
            return
        self._logged.add(mark)
        logger.warning("cachekit: %s of %s/%s failed (%s: %s); %s", what, resource, action,
                       type(exc).__name__, exc,
                       "the expired value is served" if what == "load" else "the stale value stays served")

    # -- records -------------------------------------------------------------------------------------------------

    def _found(self, key: str, stored: Any) -> tuple[float, float, Any] | None:
        """The record stored under the sibling ``key``; a bad one is counted, dropped and ``None``."""
        try:
            return record_of(stored)
        except CorruptEntryError as exc:
            cache = self.cache
            cache._backend_failed(key, exc)
            cache._drop(key)
            return None

    def _plan(self, action: str, value: Any, delta: float, ttl: Any,
              fresh: Freshness) -> tuple[Any, tuple[float | None, int | None], Any, Any] | None:
        """How to store a loaded value: (the value's TTL, the store plan, the record, the record's TTL); ``None``
        when the policies say not to store it (``none_ttl=0``, ``min_hits_before_store``)."""
        cache = self.cache
        policy = cache.policy(action)
        logical = ttl
        if value is None and policy.none_ttl is not DEFAULT:
            logical = policy.none_ttl
        elif logical is DEFAULT:
            logical = cache.ttl if policy.ttl is DEFAULT else policy.ttl
        if logical == 0:
            return None
        if logical is None:
            return None, (None, policy.max_payload_bytes), (MARK, 0.0, float(delta), value), None
        plain = logical
        if fresh.early_refresh and delta > 0:
            # XFetch, drawn once per stored value: the plain entry leaves delta * beta * -ln(rand()) early, and
            # the read that finds it gone gets the record (still fresh) at once while one refresh reloads it.
            plain = max(logical + delta * fresh.beta * _log(_random() or 1e-300), 0.001)
        record = (MARK, cache._clock() + logical, float(delta), value)
        return plain, (plain, policy.max_payload_bytes), record, logical + fresh.window

    # -- sync ----------------------------------------------------------------------------------------------------

    def read(self, key: str, resource: str, action: str, fresh: Freshness, fn: Callable[..., Any],
             args: tuple[Any, ...], kwargs: dict[str, Any], ttl: Any) -> Any:
        """A read of ``key`` by a callable with policies of its own: a plain hit, else :meth:`after_miss`."""
        read = self.cache._read  # an attribute, not a method: LOAD_METHOD would take its slow path
        value = read(key)
        if value is not MISSING:
            return value
        return self.after_miss(key, resource, action, fresh, functools.partial(fn, *args, **kwargs), ttl)

    def after_miss(self, key: str, resource: str, action: str, fresh: Freshness, loader: Loader, ttl: Any) -> Any:
        """After a miss of the plain entry: the record beside it decides (see the module docstring)."""
        cache = self.cache
        beside = sibling(key)
        found = self._found(beside, cache._quiet_read(beside))
        value, grace, early, fallback = self._decide(found, fresh)
        if grace is not None and found is not None:  # (grace comes only with a record)
            started = self._start(key, found, grace, resource, action, fresh, loader, ttl)
            self._count_served(resource, action, fresh, early=early, started=started)
            return value
        try:
            return self._load(key, action, fresh, loader, ttl)
        except Exception as exc:
            return self._served_on_error(resource, action, exc, fallback)

    def _served_on_error(self, resource: str, action: str, exc: Exception, fallback: Any) -> Any:
        """A load failed (raised inside its ``except``): ``stale_if_error``'s value, counted and logged, or the
        error again when there is none."""
        if fallback is MISSING:
            raise exc
        self.counter(resource, action).stale_on_error += 1
        self._log_error(resource, action, exc, "load")
        return fallback

    def _decide(self, found: Any, fresh: Freshness) -> tuple[Any, float | None, bool, Any]:
        """What the record beside a missed entry allows, for the sync and the async read alike: ``(value to serve,
        the grace its refresh gets or None when nothing is served, whether the plain entry left before its expiry
        (XFetch's draw, an eviction), the value a failed load falls back to)``."""
        if found is None:
            return MISSING, None, False, MISSING
        expires_at, _, value = found
        now = self.cache._clock()
        if not expires_at or now < expires_at:  # the plain entry left early: XFetch's draw, an eviction
            return value, (expires_at - now if expires_at else 1.0) + fresh.stale_while_revalidate, True, MISSING
        if now < expires_at + fresh.stale_while_revalidate:
            return value, expires_at + fresh.stale_while_revalidate - now, False, MISSING
        return MISSING, None, False, value if now < expires_at + fresh.stale_if_error else MISSING

    def _count_served(self, resource: str, action: str, fresh: Freshness, *, early: bool, started: bool) -> None:
        """Count a value the record served: an early refresh (when one started), else a stale value."""
        if not early:
            self.counter(resource, action).stale_served += 1
        elif started and fresh.early_refresh:
            self.counter(resource, action).early_refreshes += 1

    def _load(self, key: str, action: str, fresh: Freshness, loader: Loader, ttl: Any) -> Any:
        """The foreground load: once for every concurrent reader of ``key`` in the process (and under the
        backend's lock with ``distributed_lock=True``), as :meth:`Cache._load <cachekit.Cache._load>` does."""
        cache = self.cache

        def load() -> Any:
            return self._load_and_store(key, action, fresh, loader, ttl)

        def lead() -> Any:
            value = cache._quiet_read(key)  # stored by the previous leader meanwhile?
            if value is not MISSING:
                return value
            if cache._lock_timeout is None:
                return load()
            return load_under_lock(cache.driver, key, cache._lock_timeout, cache._quiet_read, load,
                                   cache._backend_failed)

        return self.flights.run(key, lead, load)

    def _load_and_store(self, key: str, action: str, fresh: Freshness, loader: Loader, ttl: Any) -> Any:
        started = time.perf_counter()
        value = loader()
        self.store(key, action, value, time.perf_counter() - started, ttl, fresh)
        return value

    def store(self, key: str, action: str, value: Any, delta: float, ttl: Any, fresh: Freshness,
              force: bool = False) -> None:
        """Store the plain entry and the record beside it (``force``: whatever ``min_hits_before_store`` says)."""
        if isinstance(value, TypedBlob):  # a typed return keeps the plain path (no record of a boxed value)
            self.cache._after_load(key, action, value, ttl)
            return
        plan = self._plan(action, value, delta, ttl, fresh)
        if plan is None:
            return
        cache = self.cache
        plain, (_, max_payload), record, physical = plan
        planned = (plain, max_payload) if force else cache._store_plan(key, action, value, plain)
        if planned is not None and cache._write(key, value, *planned):
            cache._write(sibling(key), record, physical, max_payload)

    def _claim(self, key: str) -> bool:
        with self.lock:
            if key in self.refreshing or len(self.refreshing) >= MAX_REFRESHES:
                return False
            self.refreshing.add(key)
            return True

    def _start(self, key: str, found: tuple[float, float, Any], grace: float, resource: str, action: str,
               fresh: Freshness, loader: Loader, ttl: Any) -> bool:
        """Start one background refresh of ``key`` (none when one runs already); whether one was started.

        ``found`` is the record served, ``grace`` how long its value may still be served: the refresh puts it back
        as the plain entry for that long at most (twice the load time), so the reads made while it loads are
        plain hits rather than a miss and a read of the record each."""
        if not self._claim(key):
            return False
        context = contextvars.copy_context()
        try:
            _refresh_pool().submit(context.run, self._refresh, key, found, grace, resource, action, fresh, loader,
                                   ttl)
        except RuntimeError:  # the interpreter is shutting down: the next read loads
            with self.lock:
                self.refreshing.discard(key)
            return False
        self.counter(resource, action).refreshes_started += 1
        return True

    def _stored_since(self, key: str, seen: float) -> bool:
        """Whether a newer record than the one a refresh was started for is stored now."""
        beside = sibling(key)
        found = self._found(beside, self.cache._quiet_read(beside))
        return found is not None and found[0] != seen

    def _refresh(self, key: str, found: tuple[float, float, Any], grace: float, resource: str, action: str,
                 fresh: Freshness, loader: Loader, ttl: Any) -> None:
        """A background refresh: under the backend's lock where it has one (one process refreshes a key)."""
        try:
            cache = self.cache
            token: str | None = ""
            if cache.driver.supports_locks:
                token = _try_lock(cache.driver, key, cache._lock_timeout or 10.0, cache._backend_failed)
                if token is None:
                    return  # another process refreshes it
            try:
                if not self._stored_since(key, found[0]):
                    cache._write(key, found[2], _grace(found, grace), None)
                    self._load_and_store(key, action, fresh, loader, ttl)
            finally:
                if token:
                    _unlock(cache.driver, key, token)
        except Exception as exc:
            self.counter(resource, action).refreshes_failed += 1
            self._log_error(resource, action, exc, "refresh")
        finally:
            with self.lock:
                self.refreshing.discard(key)

    # -- async ---------------------------------------------------------------------------------------------------

    async def aread(
        self, key: str, resource: str, action: str, fresh: Freshness, loader: Callable[[], Awaitable[Any]], ttl: Any
    ) -> Any:
        """:meth:`read` for ``async def`` reads (with its loader made)."""
        cache = self.cache
        value = await cache._aread(key) if cache.driver.blocking else cache._read(key)
        if value is not MISSING:
            return value
        return await self.aafter_miss(key, resource, action, fresh, loader, ttl)

    async def aafter_miss(
        self, key: str, resource: str, action: str, fresh: Freshness, loader: Callable[[], Awaitable[Any]], ttl: Any
    ) -> Any:
        """:meth:`after_miss` for ``async def`` reads: refreshes are tasks on the running loop."""
        cache = self.cache
        beside = sibling(key)
        found = self._found(beside, await cache._aquiet_read(beside))
        value, grace, early, fallback = self._decide(found, fresh)
        if grace is not None and found is not None:  # (grace comes only with a record)
            started = self._astart(key, found, grace, resource, action, fresh, loader, ttl)
            self._count_served(resource, action, fresh, early=early, started=started)
            return value
        try:
            return await self._aload(key, action, fresh, loader, ttl)
        except Exception as exc:
            return self._served_on_error(resource, action, exc, fallback)

    async def _aload(
        self, key: str, action: str, fresh: Freshness, loader: Callable[[], Awaitable[Any]], ttl: Any
    ) -> Any:
        cache = self.cache

        async def load() -> Any:
            return await self._aload_and_store(key, action, fresh, loader, ttl)

        async def lead() -> Any:
            value = await cache._aquiet_read(key)
            return value if value is not MISSING else await load()

        return await self.flights.arun(key, lead, load)

    async def _aload_and_store(
        self, key: str, action: str, fresh: Freshness, loader: Callable[[], Awaitable[Any]], ttl: Any
    ) -> Any:
        started = time.perf_counter()
        value = await loader()
        delta = time.perf_counter() - started
        cache = self.cache
        plan = None if isinstance(value, TypedBlob) else self._plan(action, value, delta, ttl, fresh)
        if plan is None:
            if isinstance(value, TypedBlob):  # a typed return: the plain store only
                planned = cache._store_plan(key, action, value, ttl)
                if planned is not None:
                    await cache._awrite(key, value, *planned)
            return value
        plain, (_, max_payload), record, physical = plan
        planned = cache._store_plan(key, action, value, plain)
        if planned is not None and await cache._awrite(key, value, *planned):
            await cache._awrite(sibling(key), record, physical, max_payload)
        return value

    def _astart(self, key: str, found: tuple[float, float, Any], grace: float, resource: str, action: str,
                fresh: Freshness, loader: Callable[[], Awaitable[Any]], ttl: Any) -> bool:
        import asyncio

        if not self._claim(key):
            return False
        refresh = self._arefresh(key, found, grace, resource, action, fresh, loader, ttl)
        task = asyncio.get_running_loop().create_task(refresh)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.counter(resource, action).refreshes_started += 1
        return True

    async def _arefresh(self, key: str, seen_record: tuple[float, float, Any], grace: float, resource: str,
                        action: str, fresh: Freshness, loader: Callable[[], Awaitable[Any]], ttl: Any) -> None:
        from ._executor import run_blocking

        try:
            cache = self.cache
            token: str | None = ""
            if cache.driver.supports_locks:
                token = await run_blocking(cache.driver, _try_lock, cache.driver, key, cache._lock_timeout or 10.0,
                                           cache._backend_failed)
                if token is None:
                    return
            try:
                beside = sibling(key)
                found = self._found(beside, await cache._aquiet_read(beside))
                if found is None or found[0] == seen_record[0]:
                    await cache._awrite(key, seen_record[2], _grace(seen_record, grace), None)
                    await self._aload_and_store(key, action, fresh, loader, ttl)
            finally:
                if token:
                    await run_blocking(cache.driver, _unlock, cache.driver, key, token)
        except Exception as exc:
            self.counter(resource, action).refreshes_failed += 1
            self._log_error(resource, action, exc, "refresh")
        finally:
            with self.lock:
                self.refreshing.discard(key)

    async def adrain(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for this loop's background refreshes, then cancel what is left."""
        import asyncio

        loop = asyncio.get_running_loop()
        mine = [task for task in list(self.tasks) if task.get_loop() is loop and not task.done()]
        if not mine:
            return
        _, pending = await asyncio.wait(mine, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for sync background refreshes of this namespace; whether none is left."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                busy = bool(self.refreshing)
            if not busy or time.monotonic() >= deadline:
                return not busy
            time.sleep(0.005)


def _grace(found: tuple[float, float, Any], left: float) -> float:
    """How long the value being refreshed is put back as the plain entry: twice its load time (at least 50 ms,
    at most 5 s), never past the time it may be served (``left``)."""
    return max(min(left, max(2 * found[1], 0.05), 5.0), 0.001)


