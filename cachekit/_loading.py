"""Loading after a miss: single-flight in the process (and optionally across processes), then the store.

:class:`LoadingMixin` is part of :class:`~cachekit.Cache`; it is kept apart because it is the one concern of
the namespace that coordinates concurrent callers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._async_namespace import astore
from ._executor import run_blocking
from ._freshness import resource_of
from ._types import DEFAULT, MISSING
from .policies import MethodPolicy

if TYPE_CHECKING:
    import asyncio
    from collections import OrderedDict

    from ._freshness import FreshState
    from .drivers import Driver

__all__ = ["LoadingMixin"]

logger = logging.getLogger("cachekit")

_MISS_COUNTER_LIMIT = 10_000


class _Flight:
    """One in-progress load that concurrent missers of the same key wait for."""

    __slots__ = ("error", "event", "thread", "value")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = MISSING
        self.error: BaseException | None = None
        self.thread = threading.get_ident()  # the leader's: a load of the same key inside it must not wait

    def wait(self) -> Any:
        self.event.wait()
        if self.error is not None:
            raise self.error
        return self.value



class LoadingMixin:
    """The miss path of :class:`~cachekit.Cache` (see the module docstring)."""

    driver: Driver
    _single_flight: bool
    _lock_timeout: float | None
    _flights: dict[str, _Flight]
    _flights_lock: threading.Lock
    _async_flights: dict[tuple[int, str], asyncio.Task[Any]]
    _policies: dict[str, MethodPolicy]
    _default_policy: MethodPolicy
    _miss_counts: OrderedDict[str, int]
    _fresh: FreshState
    ttl: float | None
    _driver_get: Callable[[str], Any]

    if TYPE_CHECKING:

        def _backend_failed(self, key: str | None, exc: BaseException) -> None: ...
        def _decoded(self, key: str, raw: Any) -> Any: ...
        def _write(self, key: str, value: Any, ttl: float | None, max_payload: int | None) -> bool: ...

    def _load(self, key: str, action: str, loader: Callable[[], Any], ttl: Any = DEFAULT) -> Any:
        """After a miss: call ``loader`` once for all concurrent missers of ``key`` and store the result."""
        if self._fresh.policies:  # an action with freshness policies (cachekit._freshness): its record decides
            fresh = self._fresh.policies.get(action)
            if fresh is not None:
                return self._fresh.after_miss(key, resource_of(key), action, fresh, loader, ttl)
        if not self._single_flight:
            return self._load_and_store(key, action, loader, ttl)
        with self._flights_lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            if flight.thread == threading.get_ident():
                # Re-entered by the leader's own loader (a @cached override calling super() on the same key):
                # waiting for ourselves would never end, so load without the flight.
                return self._load_and_store(key, action, loader, ttl)
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
            self._backend_failed(key, exc)
            return ""

    def _unlock(self, key: str, token: str) -> None:
        if token:
            try:
                self.driver.release_lock(key, token)
            except Exception as exc:  # the lock expires by itself
                logger.debug("cachekit: could not release the lock of %r: %s", key, exc)

    def _load_and_store(self, key: str, action: str, loader: Callable[[], Any], ttl: Any) -> Any:
        # The key carries the generations read before the load: if a write bumps them meanwhile, this value
        # lands under a key that no later read computes.
        value = loader()
        self._after_load(key, action, value, ttl)
        return value

    async def _aload(
        self, key: str, action: str, loader: Callable[[], Awaitable[Any]], ttl: Any = DEFAULT
    ) -> Any:
        """The async twin of :meth:`_load`; blocking drivers run on cachekit's executor.

        The load runs in its own task that every caller awaits through :func:`asyncio.shield`, so cancelling one
        caller (a client that went away) cancels neither the load nor the other callers waiting for it.
        """
        import asyncio

        if self._fresh.policies:  # an action with freshness policies (cachekit._freshness): its record decides
            fresh = self._fresh.policies.get(action)
            if fresh is not None:
                return await self._fresh.aafter_miss(key, resource_of(key), action, fresh, loader, ttl)
        loop = asyncio.get_running_loop()
        flight_key = (id(loop), key)
        task = self._async_flights.get(flight_key) if self._single_flight else None
        if task is not None and task is asyncio.current_task():
            return await self._aload_and_store(key, action, loader, ttl)  # re-entered by the flight's own loader
        if task is None:
            task = loop.create_task(self._alead(key, action, loader, ttl))
            task.add_done_callback(_retrieve_exception)
            if self._single_flight:
                self._async_flights[flight_key] = task
                task.add_done_callback(lambda _: self._async_flights.pop(flight_key, None))
        return await asyncio.shield(task)

    async def _alead(self, key: str, action: str, loader: Callable[[], Awaitable[Any]], ttl: Any) -> Any:
        """A new flight: read the key again first, as the sync leader does. A miss whose read (on the executor,
        for tiers) began before the previous flight stored and ended after that flight was gone must not load
        again (issue 23, item 4: 37 of 200 bursts of 50 misses called the source twice)."""
        if self._single_flight:
            value = await self._aquiet_read(key)
            if value is not MISSING:
                return value
        return await self._aload_and_store(key, action, loader, ttl)

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

    async def _aload_and_store(
        self, key: str, action: str, loader: Callable[[], Awaitable[Any]], ttl: Any
    ) -> Any:
        value = await loader()
        await self._aafter_load(key, action, value, ttl)
        return value

    async def _aafter_load(self, key: str, action: str, value: Any, ttl: Any = DEFAULT) -> None:
        """:meth:`_after_load` without blocking the event loop."""
        if self.driver.supports_async:
            planned = self._store_plan(key, action, value, ttl)
            if planned is not None:
                await astore(self, key, value, *planned)  # type: ignore[arg-type]
        else:  # a blocking driver without native twins: off the event loop, on cachekit's executor
            await run_blocking(self.driver, self._after_load, key, action, value, ttl)

    async def _awrite(self, key: str, value: Any, ttl: float | None, max_payload: int | None) -> bool:
        """:meth:`_write` without blocking the event loop (the freshness policies' async stores)."""
        if self.driver.supports_async:
            return bool(await astore(self, key, value, ttl, max_payload))  # type: ignore[arg-type]
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
        try:
            return self._decoded(key, self._driver_get(key))
        except Exception:
            return MISSING



def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    # Every caller may have been cancelled; mark a failed load's exception as seen so asyncio does not warn.
    if not task.cancelled():
        task.exception()


