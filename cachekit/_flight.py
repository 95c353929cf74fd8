"""Single flight: concurrent misses of one key run one load, and the others wait for its result.

:class:`Flights` is owned by a :class:`~cachekit.Cache` and knows nothing of it: each call is handed what the
flight's leader runs (``lead``: re-read the key, then load and store) and what a caller runs on its own
(``alone``: load and store, for a load re-entered by its own loader, or with single flight off). The calls go
one way, from the cache down; nothing here calls back into the cache but the functions it was handed.
:func:`load_under_lock` is the cross-process variant a leader runs with ``Cache(distributed_lock=True)``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ._types import MISSING

if TYPE_CHECKING:
    import asyncio

    from .drivers.base import Driver

__all__ = ["Flights", "load_under_lock"]

logger = logging.getLogger("cachekit")


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


class Flights:
    """The loads in progress of one cache, sync (per key) and async (per event loop and key).

    :param enabled: ``False`` (``Cache(single_flight=False)``): every caller runs ``alone``; an async load still
        runs in a task of its own, so a cancelled caller never cancels it.
    """

    __slots__ = ("_lock", "_sync", "_tasks", "enabled")

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._sync: dict[str, _Flight] = {}
        self._lock = threading.Lock()
        self._tasks: dict[tuple[int, str], asyncio.Task[Any]] = {}

    def run(self, key: str, lead: Callable[[], Any], alone: Callable[[], Any]) -> Any:
        """``lead()`` once for all concurrent callers of ``key`` (each gets its value or its exception)."""
        if not self.enabled:
            return alone()
        with self._lock:
            flight = self._sync.get(key)
            leader = flight is None
            if flight is None:
                flight = self._sync[key] = _Flight()
        if not leader:
            if flight.thread == threading.get_ident():
                # Re-entered by the leader's own loader (a @cached override calling super() on the same key):
                # waiting for ourselves would never end, so load without the flight.
                return alone()
            return flight.wait()
        try:
            flight.value = value = lead()
            return value
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._sync[key]
            flight.event.set()

    async def arun(
        self, key: str, lead: Callable[[], Coroutine[Any, Any, Any]], alone: Callable[[], Coroutine[Any, Any, Any]]
    ) -> Any:
        """The async twin of :meth:`run`, per event loop.

        The load runs in its own task that every caller awaits through :func:`asyncio.shield`, so cancelling one
        caller (a client that went away) cancels neither the load nor the other callers waiting for it.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        flight_key = (id(loop), key)
        task = self._tasks.get(flight_key) if self.enabled else None
        if task is not None and task is asyncio.current_task():
            return await alone()  # re-entered by the flight's own loader
        if task is None:
            task = loop.create_task(lead() if self.enabled else alone())
            task.add_done_callback(_retrieve_exception)
            if self.enabled:
                self._tasks[flight_key] = task
                task.add_done_callback(lambda _: self._tasks.pop(flight_key, None))
        return await asyncio.shield(task)


def load_under_lock(
    driver: Driver,
    key: str,
    timeout: float,
    quiet_read: Callable[[str], Any],
    load: Callable[[], Any],
    lock_failed: Callable[[str, BaseException], None],
) -> Any:
    """Load under the backend's lock; without it, wait for the holder's result (or the lock) a while.

    ``quiet_read`` re-reads the key (the holder may have stored it), ``load`` loads and stores, ``lock_failed``
    counts a failed lock call (then the load goes ahead without the lock).
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        token = _try_lock(driver, key, timeout, lock_failed)
        if token is not None:
            try:
                value = quiet_read(key)  # the previous holder may have stored it just now
                return value if value is not MISSING else load()
            finally:
                _unlock(driver, key, token)
        if time.monotonic() >= deadline:
            return load()  # the holder is too slow: load anyway
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
        value = quiet_read(key)
        if value is not MISSING:
            return value


def _try_lock(driver: Driver, key: str, timeout: float, failed: Callable[[str, BaseException], None]) -> str | None:
    """A lock token, ``None`` when another process holds the lock, ``""`` when locking failed (go ahead)."""
    try:
        return driver.acquire_lock(key, timeout)
    except Exception as exc:
        failed(key, exc)
        return ""


def _unlock(driver: Driver, key: str, token: str) -> None:
    if token:
        try:
            driver.release_lock(key, token)
        except Exception as exc:  # the lock expires by itself
            logger.debug("cachekit: could not release the lock of %r: %s", key, exc)


def _retrieve_exception(task: asyncio.Task[Any]) -> None:
    # Every caller may have been cancelled; mark a failed load's exception as seen so asyncio does not warn.
    if not task.cancelled():
        task.exception()
