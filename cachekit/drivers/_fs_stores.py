"""The diskcache stores behind :class:`~cachekit.drivers.filesystem.FilesystemDriver`, and its error mapping.

The home of :class:`DiskStores`, the base the filesystem drivers share for opening a directory's
:class:`~cachekit.drivers._disk.Store`, checking it is still current (a database deleted or replaced under
the driver is reopened, see :mod:`cachekit.drivers._disk`), and translating what diskcache, SQLite and the OS
raise (:data:`FAILURES`) into :class:`~cachekit.errors.DriverError` and
:class:`~cachekit.errors.DriverUnavailable`, and refused rows into :class:`~cachekit.errors.CorruptEntryError`.
Which store holds a key is the drivers' own business (the ``_store_for`` hooks).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import diskcache

from cachekit.drivers._disk import REVALIDATE_EVERY, RefusedRow, Store
from cachekit.drivers._fs_options import EVICTION_POLICIES
from cachekit.errors import CorruptEntryError, DriverError, DriverUnavailable

__all__ = ["FAILURES", "DiskStores"]

logger = logging.getLogger("cachekit")

#: What a diskcache operation may raise that means the backend failed (translated by ``DiskStores._failure``).
#: AssertionError: diskcache asserts its transaction bookkeeping, which a directory replaced mid-transaction breaks.
FAILURES: Final = (diskcache.Timeout, OSError, sqlite3.Error, AssertionError)


class DiskStores:
    """Store bookkeeping and error mapping of the filesystem drivers (a base class; the drivers set the state)."""

    directory: Path
    create_directory: bool
    max_bytes: int
    eviction_policy: str
    timeout: float
    _root: Store
    _closed: bool
    _reopen_lock: threading.Lock
    _reopened: int
    _refused: int
    _dropped_writes: int

    def _open_store(self, path: Path) -> Store:
        policy = EVICTION_POLICIES[self.eviction_policy]
        return Store(path, size_limit=self.max_bytes, policy=policy, timeout=self.timeout)

    def _current(self, store: Store, *, always: bool, create: bool = True) -> Store | None:
        if self._closed:
            raise DriverError(f"this {type(self).__name__} is closed; create a new one")
        if not always and store.check_at > time.monotonic():
            return store
        with self._reopen_lock:
            if store is not self._root:
                return self._revalidated(store, create=create)
            fresh = self._revalidated(store, create=True)
            if fresh is not None:
                self._root = fresh
            return fresh

    def _revalidated(self, store: Store, *, create: bool) -> Store | None:
        """``store``, or a new one on its path when its database was deleted or replaced (another thread may
        still finish an operation on the old one; it is closed when the last reference goes). ``None`` when the
        database is gone and ``create`` is false."""
        store.check_at = time.monotonic() + REVALIDATE_EVERY
        if not store.replaced():
            return store
        if not create and store.identity is not None and not (store.path / "cache.db").is_file():
            return None
        if not self.create_directory and not self.directory.is_dir():
            raise DriverUnavailable(
                f"cache directory {str(self.directory)!r} was deleted and create_directory=False; recreate it"
            )
        fresh = self._open_store(store.path)
        self._reopened += 1
        logger.warning("cachekit: filesystem cache database in %s was deleted or replaced; reopened it", store.path)
        return fresh

    @contextmanager
    def _errors(self, operation: str, key: str | None = None, *, writes: int = 0) -> Iterator[None]:
        """Translate diskcache, SQLite and OS failures into cachekit's errors (original as ``__cause__``);
        ``writes``: how many entries the operation was storing (counted as dropped when it fails)."""
        try:
            yield
        except FAILURES as exc:
            self._dropped_writes += writes
            raise self._failure(exc, operation, key) from exc

    def _open_stores(self) -> list[Store]:
        return [self._root]

    def _refusal(self, exc: RefusedRow, key: str) -> CorruptEntryError:
        self._refused += 1
        return CorruptEntryError(
            f"filesystem cache entry {key!r} in {self.directory} is {exc}; the row was dropped and no file was "
            "opened or removed. Another writer shares this directory: give cachekit a directory of its own"
        )

    def _failure(self, exc: BaseException, operation: str, key: str | None = None) -> DriverError:
        # Never leave a transaction open (diskcache's own assertion can fire mid-transaction when the directory
        # is replaced under it), and look at the database again on the next call.
        for store in self._open_stores():
            store.abandon()
            store.check_at = 0.0
        where = f" of {key!r}" if key else ""
        if isinstance(exc, diskcache.Timeout):
            return DriverError(
                f"filesystem cache {operation}{where} timed out after {self.timeout} s waiting for "
                f"SQLite's lock in {self.directory}; raise timeout= or reduce concurrent writers"
            )
        if isinstance(exc, (OSError, sqlite3.OperationalError, AssertionError)):
            return DriverUnavailable(
                f"filesystem cache {operation}{where} failed: {self.directory} cannot be used ({exc})"
            )
        return DriverError(f"filesystem cache {operation}{where} failed in {self.directory}: {exc}")
