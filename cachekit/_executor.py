"""cachekit's own bounded thread pools, where ``async def`` reads run the calls of blocking drivers.

A driver without native async methods (filesystem, S3, a third-party driver) blocks on I/O, so its async twins
(``aget``, ``aset``, ...) run the sync method in a worker thread. Not in the event loop's default executor: that
pool is shared with the application (``asyncio.to_thread``, ``run_in_executor(None, ...)``), and a cache that
fills it would stall unrelated work, or be stalled by it. cachekit keeps pools of its own instead, one per size:

* the size comes from ``Cache(config={"async_workers": N})``, else the ``CACHEKIT_ASYNC_WORKERS`` environment
  variable, else ``min(32, cpu_count + 4)`` (the standard library's own default for I/O-bound pools);
* pools start their threads on first use, are shared by every driver that asks for the same size, and are
  replaced in a forked child (a pool's threads do not survive ``fork``);
* the caller's :mod:`contextvars` go with the call, as with :func:`asyncio.to_thread`.

E.g.::

    executor = shared_executor(8)
    blob = await executor.run(driver.get, "k")
    await run_blocking(driver, driver.set, "k", b"v", 60)    # the driver's executor, inline when it never blocks
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol, TypeVar

from .errors import ConfigurationError

__all__ = ["ENV_WORKERS", "BoundedExecutor", "default_workers", "run_blocking", "shared_executor"]

T = TypeVar("T")

#: The environment variable that sizes the default pool.
ENV_WORKERS: Final = "CACHEKIT_ASYNC_WORKERS"
_MAX_WORKERS: Final = 1024


def check_workers(value: object, what: str = "async_workers") -> int:
    """``value`` as a pool size (an int from 1 to 1024), or :class:`~cachekit.errors.ConfigurationError`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_WORKERS:
        raise ConfigurationError(
            f"{what} must be a whole number of threads from 1 to {_MAX_WORKERS} (the size of the pool where "
            f"async reads run blocking drivers); got {value!r}"
        )
    return value


def default_workers() -> int:
    """``CACHEKIT_ASYNC_WORKERS`` when set, else ``min(32, cpu_count + 4)``."""
    raw = os.environ.get(ENV_WORKERS, "").strip()
    if not raw:
        return min(32, (os.cpu_count() or 1) + 4)
    what = f"the {ENV_WORKERS} environment variable"
    try:
        number = int(raw)
    except ValueError:
        raise ConfigurationError(f"{what} must be a whole number of threads such as 8; got {raw!r}") from None
    return check_workers(number, what)


class BoundedExecutor:
    """A thread pool of ``workers`` threads for blocking driver calls, started on first use.

    E.g.::

        executor = BoundedExecutor(4)
        value = await executor.run(time.sleep, 0.1)   # at most 4 such calls at once; the rest queue
        executor.shutdown()
    """

    def __init__(self, workers: int) -> None:
        self.workers = check_workers(workers)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        _every_executor.add(self)

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run ``fn(*args)`` in one of the pool's threads, with the caller's context variables."""
        import asyncio  # here, so that ``import cachekit`` does not import asyncio

        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self._threads(), functools.partial(context.run, fn, *args))

    def _threads(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None:
            with self._lock:
                pool = self._pool
                if pool is None:
                    pool = self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cachekit-async")
        return pool

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads once queued calls are done; a later :meth:`run` starts a new pool."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait)

    def _forget_after_fork(self) -> None:
        # In a forked child the pool's threads are gone; its bookkeeping would wait for them forever.
        self._pool = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<BoundedExecutor workers={self.workers} {'running' if self._pool else 'idle'}>"


_every_executor: weakref.WeakSet[BoundedExecutor] = weakref.WeakSet()
_shared: dict[int, BoundedExecutor] = {}
_shared_lock = threading.Lock()


def shared_executor(workers: int | None = None) -> BoundedExecutor:
    """The process-wide pool of ``workers`` threads (default :func:`default_workers`), created once per size."""
    size = default_workers() if workers is None else check_workers(workers)
    executor = _shared.get(size)
    if executor is None:
        with _shared_lock:
            executor = _shared.setdefault(size, BoundedExecutor(size))
    return executor


class _Runner(Protocol):
    """What :func:`run_blocking` reads of a :class:`~cachekit.drivers.Driver` (drivers import this module)."""

    @property
    def blocking(self) -> bool: ...
    @property
    def async_executor(self) -> BoundedExecutor | None: ...


async def run_blocking(driver: _Runner, fn: Callable[..., T], /, *args: Any) -> T:
    """``fn(*args)`` for ``driver``: inline when the driver never blocks, else in the driver's executor.

    The driver's executor is ``driver.async_executor`` when set (``Cache(config={"async_workers": N})``), else
    the shared default pool.
    """
    if not driver.blocking:
        return fn(*args)
    executor = driver.async_executor or shared_executor()
    return await executor.run(fn, *args)


def _after_fork_in_child() -> None:
    global _shared_lock
    _shared_lock = threading.Lock()
    for executor in list(_every_executor):
        executor._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
