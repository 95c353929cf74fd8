"""Filesystem drivers on diskcache: entries in a SQLite-indexed directory that survives restarts.

:class:`FilesystemDriver` keeps one :class:`diskcache.Cache` in ``directory``, with cachekit's own
:class:`~cachekit.drivers._disk.RawBytesDisk`: every blob is stored inline in the SQLite database, and rows
that cachekit did not write (pickles, file references) are refused, never read or followed (see
:mod:`cachekit.drivers._disk`: the directory is untrusted input, and a deleted or replaced directory is
reopened). It is safe for several threads and processes sharing one directory (WAL journal; writes take
SQLite's write lock, reads never do).

**A full disk fails writes, not reads.** A write that fails (full disk, lock timeout, missing directory)
raises :class:`~cachekit.errors.DriverError` (the namespace drops it and counts an error) and is counted in
``stats()["dropped_writes"]``; hits keep being served, because a hit never writes (the access-time bump is
best-effort), and writes succeed again as soon as space frees.

**Expiry follows the driver's clock, not diskcache's.** diskcache computes and checks its ``expire_time``
column with :func:`time.time`, so an injected ``clock`` (tests, or a clock shared with other tiers) could not
move it. Each entry is therefore stored without a diskcache expiry, and its deadline (``clock() + ttl``, epoch
seconds) goes into diskcache's ``tag`` column, which is indexed (``tag_index=True``) and which the hit's
single SELECT returns together with the value. An entry met past its deadline is deleted and reported as a
miss. The deadline is what :meth:`FilesystemDriver.get_with_expiry`
returns, so a multi-tier promotion copies entries with their *remaining* TTL.

**Expired entries are also removed on a write cadence** (``enable_cleanup=True``): every
:data:`CLEANUP_EVERY_WRITES` writes, the writing call deletes up to :data:`CLEANUP_BATCH` entries whose
deadline has passed, found by a range scan of the tag index. The cost lands on writers, which take SQLite's
write lock anyway; reads never run it and never wait for it (a hit takes no lock).
A background thread was rejected: it would hold the write lock at moments nobody chose, needs a lifetime tied
to :meth:`~FilesystemDriver.close`, and keeps running in idle processes (where nothing grows).
:meth:`FilesystemDriver.remove_expired` removes every expired entry at once, for a cron job.

**``clear(prefix)`` is an index range scan, not a read of every entry.** diskcache's ``Cache`` table has a
unique index on ``(key, raw)``; keys are stored as SQLite TEXT, which compares as UTF-8 bytes, i.e. in the
same order as Python compares code points. The keys starting with ``prefix`` are exactly those with
``prefix <= key < upper(prefix)`` (``prefix`` with its last character incremented), a ``SEARCH ... USING
COVERING INDEX`` in SQLite's plan. The matching keys are then deleted with diskcache's own
:meth:`~diskcache.Cache.delete` inside :meth:`~diskcache.Cache.transact`, in batches, so diskcache keeps its
size accounting and removes the files of large values. Tags were rejected for this: one tag per entry cannot
name every prefix a caller may clear (``ns/``, ``ns/resource=users/``, a partition, one item), and the tag
column already carries the deadline. diskcache has no public range query, so the scans use
``Cache._sql`` - the statement executor diskcache's own methods use, unchanged since diskcache 3.

:class:`~cachekit.drivers.partition_filesystem.PartitionAwareFilesystemCache` (in its own module,
which imports this one) spreads keys over one diskcache per resource and per partition folder, so clearing a
partition touches only that partition's database.

This module is the home of :class:`FilesystemDriver`'s operations. Opening a directory's store, reopening a
deleted or replaced one, and turning diskcache, SQLite and OS failures into cachekit's errors is the job of its
base, :class:`~cachekit.drivers._fs_stores.DiskStores`; the option checks live in :mod:`cachekit.drivers._fs_options`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import diskcache

from cachekit._options import reject_unknown_options
from cachekit._types import MISSING, Missing, check_key, normalize_ttl
from cachekit.drivers._disk import RefusedRow, Store
from cachekit.drivers._fs_options import (
    DEFAULT_MAX_BYTES,
    EVICTION_POLICIES,
    check_bool,
    check_directory,
    check_max_bytes,
    check_policy,
    check_prefix,
    check_timeout,
    outermost,
    prefix_range,
)
from cachekit.drivers._fs_stores import FAILURES, DiskStores
from cachekit.drivers.base import HOST, Driver
from cachekit.errors import ConfigurationError, DriverUnavailable
from cachekit.generations import GenerationStore

__all__ = [
    "CLEANUP_BATCH",
    "CLEANUP_EVERY_WRITES",
    "DEFAULT_MAX_BYTES",
    "EVICTION_POLICIES",
    "FilesystemDriver",
]

#: With ``enable_cleanup``, every this many writes one write also removes expired entries...
CLEANUP_EVERY_WRITES = 100
#: ... at most this many, so that no single write pays for a large backlog.
CLEANUP_BATCH = 200

_OPTIONS = (
    "directory", "create_directory", "max_bytes", "eviction_policy", "enable_cleanup", "key_prefix", "clock",
    "timeout",
)


class FilesystemDriver(DiskStores, Driver):
    """Cache entries in a local directory through diskcache; they survive restarts and processes share them.

    :param directory: where the cache lives (required); several processes may share it.
    :param create_directory: create ``directory`` when missing (default); ``False`` makes a missing directory
        a :class:`~cachekit.errors.ConfigurationError` at construction.
    :param max_bytes: diskcache's ``size_limit``: above it, writes evict entries by ``eviction_policy``.
        ``None`` means diskcache's default of 1 GiB (:data:`DEFAULT_MAX_BYTES`); the limit is approximate
        (diskcache evicts at most 10 entries a write).
    :param eviction_policy: ``"lru"`` (least recently used; a hit bumps the entry's access time at most once a
        second, best-effort), ``"fifo"`` (least recently stored; hits are read-only) or ``"lfu"`` (least
        frequently used).
    :param enable_cleanup: remove expired entries on a write cadence (see the module docstring).
    :param key_prefix: prepended to every key, so several drivers can share a directory.
    :param clock: wall clock for deadlines, epoch seconds (default :func:`time.time`).
    :param timeout: seconds a write waits for SQLite's lock before failing with a :class:`DriverError` (default
        10, not diskcache's 60); reads never wait for it.

    E.g.::

        driver = FilesystemDriver(directory="/var/cache/myapp", max_bytes=512 << 20, eviction_policy="lru")
        driver.set("users/1", b"...", ttl=300)
        driver.get("users/1")          # b"..." until 300 s have passed, also after a restart
        driver.clear("users/")         # an index range scan, not a walk over every entry

        Cache(driver="filesystem", config={"directory": "/var/cache/myapp"})
    """

    name = "filesystem"
    sharing = HOST
    #: The most bytes a read loads of an entry (set by the Caches on this driver; issue 19, item 6).
    max_read_bytes: int | None = None
    blocking = True

    def __init__(
        self,
        *,
        directory: str | os.PathLike[str] | None = None,
        create_directory: bool = True,
        max_bytes: int | None = None,
        eviction_policy: str = "lru",
        enable_cleanup: bool = True,
        key_prefix: str = "",
        clock: Callable[[], float] | None = None,
        timeout: float = 10.0,
        **unknown: Any,
    ) -> None:
        reject_unknown_options(f"{type(self).__name__} driver", unknown, self._options())
        self.directory = check_directory(directory, create_directory)
        self.max_bytes = check_max_bytes(max_bytes)
        self.eviction_policy = check_policy(eviction_policy)
        self.enable_cleanup = check_bool("enable_cleanup", enable_cleanup)
        if not isinstance(key_prefix, str):
            raise ConfigurationError(f"key_prefix must be a string (may be empty); got {key_prefix!r}")
        self.key_prefix = key_prefix
        if clock is not None and not callable(clock):
            raise ConfigurationError(f"clock must be a callable returning epoch seconds; got {clock!r}")
        self._clock: Callable[[], float] = clock or time.time
        self.timeout = check_timeout(timeout)
        self.create_directory = bool(create_directory)
        self._writes_since_cleanup = 0
        self._expired_removed = 0
        self._refused = 0
        self._dropped_writes = 0
        self._reopened = 0
        self._reopen_lock = threading.Lock()
        self._closed = False
        try:
            self._root = self._open_store(self._root_path())
        except (OSError, sqlite3.Error, diskcache.Timeout) as exc:
            raise ConfigurationError(
                f"cannot open a diskcache in {self.directory}: {exc}; check that the directory is writable"
            ) from exc

    # -- single entries ------------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | Missing:
        found = self.get_with_expiry(key)
        return found if found is MISSING else found[0]  # type: ignore[index]

    def get_with_expiry(self, key: str) -> tuple[bytes, float | None] | Missing:
        """Return ``(blob, deadline)``; an entry met past its deadline is deleted and reported as a miss."""
        full_key = self.key_prefix + check_key(key)
        # The hit path: a plain try/except, since a context manager here costs more than the rest of the call.
        try:
            store = self._existing_store_for(key)
            if store is None:
                return MISSING
            found = store.get(full_key, self.max_read_bytes)
            if found is None:
                return MISSING
            deadline = found[1]
            if deadline is not None:
                now = self._clock()
                if now >= deadline:
                    store.drop_if_expired(full_key, now)
                    return MISSING
        except RefusedRow as exc:
            raise self._refusal(exc, key) from None
        except FAILURES as exc:
            raise self._failure(exc, "get", key) from exc
        return found

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        full_key = self.key_prefix + check_key(key)
        deadline = self._deadline(ttl)
        with self._errors("set", key, writes=1):
            store = self._store_for(key)
            store.set(full_key, bytes(blob), deadline)
            self._after_writes(store, 1)

    def delete(self, key: str) -> bool:
        full_key = self.key_prefix + check_key(key)
        with self._errors("delete", key):
            store = self._existing_store_for(key)
            return store is not None and store.delete(full_key)

    def add(self, key: str, blob: bytes, ttl: float | None = None) -> bool:
        """Store only if absent, in one diskcache transaction (SQLite's lock: atomic across processes)."""
        full_key = self.key_prefix + check_key(key)
        deadline = self._deadline(ttl)
        with self._errors("add", key, writes=1):
            store = self._store_for(key)
            with store.cache.transact():
                if self._live(store, full_key) is not None:
                    return False
                if ttl != 0:
                    store.set(full_key, bytes(blob), deadline)
            self._after_writes(store, 1)
            return True

    def replace(self, key: str, expected: bytes, blob: bytes, ttl: float | None = None) -> bool:
        """Compare-and-set in one diskcache transaction (atomic across processes)."""
        full_key = self.key_prefix + check_key(key)
        deadline = self._deadline(ttl)
        with self._errors("replace", key, writes=1):
            store = self._existing_store_for(key)
            if store is None:
                return False
            with store.cache.transact():
                found = self._live(store, full_key)
                if found is None or found[0] != expected:
                    return False
                if ttl == 0:
                    store.delete(full_key)
                else:
                    store.set(full_key, bytes(blob), deadline)
            self._after_writes(store, 1)
            return True

    def _live(self, store: Store, full_key: str) -> tuple[bytes, float | None] | None:
        try:
            found = store.get(full_key)
        except RefusedRow:  # a foreign row, deleted by get: the key is free
            self._refused += 1
            return None
        if found is None or (found[1] is not None and found[1] <= self._clock()):
            return None
        return found

    # -- batches -------------------------------------------------------------------------------------------

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """Store every item; one transaction per diskcache directory, so one commit instead of one per key."""
        deadline = self._deadline(ttl)
        with self._errors("set_many", writes=len(items)):
            for store, keys in self._group(items).items():
                with store.cache.transact():
                    for key in keys:
                        store.set(self.key_prefix + key, bytes(items[key]), deadline)
                self._after_writes(store, len(keys))

    def delete_many(self, keys: Iterable[str]) -> int:
        with self._errors("delete_many"):
            removed = 0
            for store, group in self._group(keys, create=False).items():
                with store.cache.transact():
                    removed += sum(1 for key in group if store.delete(self.key_prefix + key))
            return removed

    def get_many(self, keys: Sequence[str]) -> list[bytes | Missing]:
        return [self.get(key) for key in keys]

    # -- prefixes ------------------------------------------------------------------------------------------

    def clear(self, prefix: str = "") -> int:
        """Remove this driver's keys starting with ``prefix`` (all when empty) by an index range scan."""
        prefix = check_prefix(prefix)
        lo, hi = prefix_range(self.key_prefix + prefix)
        with self._errors("clear", prefix):
            return sum(store.delete_range(lo, hi) for store in self._stores_for_prefix(prefix))

    def clear_many(self, prefixes: Iterable[str]) -> int:
        return sum(self.clear(prefix) for prefix in outermost(prefix for prefix in prefixes if prefix))

    def keys(self, prefix: str = "") -> list[str]:
        """This driver's unexpired keys under ``prefix``, sorted, without ``key_prefix``."""
        prefix = check_prefix(prefix)
        lo, hi = prefix_range(self.key_prefix + prefix)
        start = len(self.key_prefix)
        with self._errors("keys", prefix):
            now = self._clock()
            found = [key for store in self._stores_for_prefix(prefix) for key in store.keys(lo, hi, now)]
        return sorted(key[start:] for key in found)

    def size(self) -> int:
        """Number of this driver's unexpired entries (counted in SQLite, not loaded)."""
        lo, hi = prefix_range(self.key_prefix)
        with self._errors("size"):
            now = self._clock()
            return sum(store.count(lo, hi, now) for store in self._stores_for_prefix(""))

    # -- housekeeping --------------------------------------------------------------------------------------

    def remove_expired(self) -> int:
        """Delete every entry past its deadline now (any ``key_prefix``); return how many were removed.

        ``enable_cleanup`` does this in small batches on writes; call this from a cron job for idle caches.
        """
        with self._errors("remove_expired"):
            now = self._clock()
            removed = sum(store.delete_expired(now, None) for store in self._stores_for_prefix(""))
        self._expired_removed += removed
        return removed

    def generation_store(self) -> GenerationStore:
        """Counters in a diskcache of their own in the directory, polled by every process that opens it."""
        from cachekit.generations.polled import FilesystemGenerations

        return FilesystemGenerations(self.directory, driver=self)

    def stats(self) -> dict[str, Any]:
        """Live ``entries`` of this ``key_prefix``, ``volume_bytes`` on disk, and the options."""
        with self._errors("stats"):
            volume = sum(store.volume() for store in self._stores_for_prefix(""))
        return {
            "driver": self.name,
            "entries": self.size(),
            "volume_bytes": volume,
            "directory": str(self.directory),
            "max_bytes": self.max_bytes,
            "eviction_policy": self.eviction_policy,
            "key_prefix": self.key_prefix,
            "cleanup": self.enable_cleanup,
            "expired_removed": self._expired_removed,
            "refused_entries": self._refused,
            "dropped_writes": self._dropped_writes,
            "reopened": self._reopened,
        }

    def close(self) -> None:
        """Close the SQLite connection of the calling thread. Safe to call twice; later calls raise."""
        self._closed = True
        self._root.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} directory={str(self.directory)!r} key_prefix={self.key_prefix!r}>"

    # -- hooks the partition-aware subclass overrides ------------------------------------------------------

    def _root_path(self) -> Path:
        return self.directory

    def _store_for(self, key: str) -> Store:
        """The store that holds ``key`` (a logical key, without ``key_prefix``), checked to be current: writes
        and scans check every time (a stat), so nothing is written into a deleted database."""
        store = self._current(self._root, always=True)
        if store is None:  # pragma: no cover - always=True never gives None
            raise DriverUnavailable(f"cannot open the filesystem cache in {self.directory}")
        return store

    def _stores_for_prefix(self, prefix: str) -> Iterator[Store]:
        """Every existing store that may hold keys starting with ``prefix`` (a logical prefix)."""
        yield self._store_for(prefix)

    def _existing_store_for(self, key: str) -> Store | None:
        """The store for a read or delete: checked every :data:`~cachekit.drivers._disk.REVALIDATE_EVERY`
        seconds only (the hit path); ``None`` where the store would have to be created (partition folders)."""
        return self._current(self._root, always=False)

    @classmethod
    def _options(cls) -> tuple[str, ...]:
        return _OPTIONS

    # -- helpers -------------------------------------------------------------------------------------------

    def _deadline(self, ttl: float | None) -> float | None:
        seconds = normalize_ttl(ttl)
        return None if seconds is None else self._clock() + seconds

    def _after_writes(self, store: Store, count: int) -> None:
        if not self.enable_cleanup:
            return
        # Unlocked on purpose: a race between threads only moves one cleanup by a few writes.
        self._writes_since_cleanup += count
        if self._writes_since_cleanup >= CLEANUP_EVERY_WRITES:
            self._writes_since_cleanup = 0
            self._expired_removed += store.delete_expired(self._clock(), CLEANUP_BATCH)

    def _group(self, keys: Iterable[str], *, create: bool = True) -> dict[Store, list[str]]:
        groups: dict[Store, list[str]] = {}
        for key in keys:
            store = self._store_for(check_key(key)) if create else self._existing_store_for(check_key(key))
            if store is not None:
                groups.setdefault(store, []).append(key)
        return groups
