"""Filesystem drivers on diskcache: entries in a SQLite-indexed directory that survives restarts.

:class:`FilesystemDriver` keeps one :class:`diskcache.Cache` in ``directory``. diskcache stores small blobs
inside its SQLite database and larger ones (32 KiB and up) as files beside it, and it is safe for several
threads and processes sharing one directory (WAL journal; writes take SQLite's write lock, reads do not).

**Expiry follows the driver's clock, not diskcache's.** diskcache computes and checks its ``expire_time``
column with :func:`time.time`, so an injected ``clock`` (tests, or a clock shared with other tiers) could not
move it. Each entry is therefore stored without a diskcache expiry, and its deadline (``clock() + ttl``, epoch
seconds) goes into diskcache's ``tag`` column, which is indexed (``tag_index=True``) and which
``Cache.get(..., tag=True)`` returns together with the value in the same query. An entry met past its
deadline is deleted and reported as a miss. The deadline is what :meth:`FilesystemDriver.get_with_expiry`
returns, so a multi-tier promotion copies entries with their *remaining* TTL.

**Expired entries are also removed on a write cadence** (``enable_cleanup=True``): every
:data:`CLEANUP_EVERY_WRITES` writes, the writing call deletes up to :data:`CLEANUP_BATCH` entries whose
deadline has passed, found by a range scan of the tag index. The cost lands on writers, which take SQLite's
write lock anyway; reads never run it, and since a batch is short, the most a read can wait is one batch (only
with ``"lru"``, where diskcache updates the access time on every hit; ``"fifo"`` hits take no lock at all).
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

:class:`PartitionAwareFilesystemCache` spreads keys over one diskcache per resource and per partition folder
(see its docstring), so clearing a partition touches only that partition's database.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import diskcache

from cachekit._options import reject_unknown_options
from cachekit._types import MISSING, Missing, check_key, normalize_ttl
from cachekit.drivers.base import Driver
from cachekit.errors import ConfigurationError, DriverError, DriverUnavailable

__all__ = [
    "CLEANUP_BATCH",
    "CLEANUP_EVERY_WRITES",
    "DEFAULT_MAX_BYTES",
    "EVICTION_POLICIES",
    "FilesystemDriver",
    "PartitionAwareFilesystemCache",
]

# What a diskcache operation may raise that means the backend failed (translated by FilesystemDriver._failure).
_FAILURES = (diskcache.Timeout, OSError, sqlite3.Error)

#: cachekit's eviction policy names and the diskcache policies they map onto.
EVICTION_POLICIES: Mapping[str, str] = {
    "lru": "least-recently-used",
    "fifo": "least-recently-stored",
    "lfu": "least-frequently-used",
}
#: The size limit when ``max_bytes`` is not given: diskcache's own default, 1 GiB.
DEFAULT_MAX_BYTES = 1 << 30
#: With ``enable_cleanup``, every this many writes one write also removes expired entries...
CLEANUP_EVERY_WRITES = 100
#: ... at most this many, so that no single write pays for a large backlog.
CLEANUP_BATCH = 200

# Deletes happen in transactions of this many keys: each holds SQLite's write lock, so keep them short.
_DELETE_BATCH = 500
_OPTIONS = (
    "directory", "create_directory", "max_bytes", "eviction_policy", "enable_cleanup", "key_prefix", "clock",
    "timeout",
)
_ABSENT = object()


class _Store:
    """One diskcache directory, plus the range scans that diskcache's public API lacks."""

    __slots__ = ("cache", "path")

    def __init__(self, path: Path, *, size_limit: int, policy: str, timeout: float) -> None:
        self.path = path
        # Settings are passed on every open: diskcache persists them, so the last opener's options win.
        self.cache = diskcache.Cache(
            str(path), timeout=timeout, size_limit=size_limit, eviction_policy=policy, tag_index=True
        )

    def get(self, full_key: str) -> tuple[bytes, float | None] | None:
        value, tag = self.cache.get(full_key, default=_ABSENT, tag=True)
        if value is _ABSENT or not isinstance(value, bytes):
            return None
        return value, (float(tag) if isinstance(tag, (int, float)) else None)

    def set(self, full_key: str, blob: bytes, deadline: float | None) -> None:
        self.cache.set(full_key, blob, tag=deadline)

    def delete(self, full_key: str) -> bool:
        return bool(self.cache.delete(full_key))

    def keys(self, lo: str, hi: str | bytes, now: float) -> list[str]:
        rows = self.cache._sql(
            "SELECT key FROM Cache WHERE key >= ? AND key < ? AND raw = 1 AND (tag IS NULL OR tag > ?)",
            (lo, hi, now),
        ).fetchall()
        return [key for (key,) in rows]

    def count(self, lo: str, hi: str | bytes, now: float) -> int:
        ((count,),) = self.cache._sql(
            "SELECT COUNT(*) FROM Cache WHERE key >= ? AND key < ? AND raw = 1 AND (tag IS NULL OR tag > ?)",
            (lo, hi, now),
        ).fetchall()
        return int(count)

    def delete_range(self, lo: str, hi: str | bytes) -> int:
        return self._delete_selected("key >= ? AND key < ?", (lo, hi), limit=None)

    def delete_expired(self, now: float, limit: int | None) -> int:
        return self._delete_selected("tag <= ?", (now,), limit=limit)

    def drop_if_expired(self, full_key: str, now: float) -> None:
        # Re-checked under the write lock: another process may have stored a fresh value since our read.
        self._delete_selected("key = ? AND tag <= ?", (full_key, now), limit=1)

    def volume(self) -> int:
        return int(self.cache.volume())

    def close(self) -> None:
        self.cache.close()

    def _delete_selected(self, where: str, args: tuple[Any, ...], *, limit: int | None) -> int:
        removed = 0
        while limit is None or removed < limit:
            batch = _DELETE_BATCH if limit is None else min(_DELETE_BATCH, limit - removed)
            with self.cache.transact():
                rows = self.cache._sql(
                    f"SELECT key FROM Cache WHERE raw = 1 AND {where} LIMIT ?", (*args, batch)
                ).fetchall()
                removed += sum(1 for (key,) in rows if self.cache.delete(key))
            if len(rows) < batch:
                break
        return removed


class FilesystemDriver(Driver):
    """Cache entries in a local directory through diskcache; they survive restarts and processes share them.

    :param directory: where the cache lives (required); several processes may share it.
    :param create_directory: create ``directory`` when missing (default); ``False`` makes a missing directory
        a :class:`~cachekit.errors.ConfigurationError` at construction.
    :param max_bytes: diskcache's ``size_limit``: above it, writes evict entries by ``eviction_policy``.
        ``None`` means diskcache's default of 1 GiB (:data:`DEFAULT_MAX_BYTES`); the limit is approximate
        (diskcache evicts at most 10 entries a write).
    :param eviction_policy: ``"lru"`` (least recently used; every hit updates the entry), ``"fifo"`` (least
        recently stored; hits are read-only) or ``"lfu"`` (least frequently used).
    :param enable_cleanup: remove expired entries on a write cadence (see the module docstring).
    :param key_prefix: prepended to every key, so several drivers can share a directory.
    :param clock: wall clock for deadlines, epoch seconds (default :func:`time.time`).
    :param timeout: seconds to wait for SQLite's lock before failing with a :class:`DriverError` (default 10,
        not diskcache's 60: a cache read that waits a minute is worse than a miss).

    E.g.::

        driver = FilesystemDriver(directory="/var/cache/myapp", max_bytes=512 << 20, eviction_policy="lru")
        driver.set("users/1", b"...", ttl=300)
        driver.get("users/1")          # b"..." until 300 s have passed, also after a restart
        driver.clear("users/")         # an index range scan, not a walk over every entry

        Cache(driver="filesystem", config={"directory": "/var/cache/myapp"})
    """

    name = "filesystem"
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
        self.directory = _check_directory(directory, create_directory)
        self.max_bytes = _check_max_bytes(max_bytes)
        self.eviction_policy = _check_policy(eviction_policy)
        self.enable_cleanup = _check_bool("enable_cleanup", enable_cleanup)
        if not isinstance(key_prefix, str):
            raise ConfigurationError(f"key_prefix must be a string (may be empty); got {key_prefix!r}")
        self.key_prefix = key_prefix
        if clock is not None and not callable(clock):
            raise ConfigurationError(f"clock must be a callable returning epoch seconds; got {clock!r}")
        self._clock: Callable[[], float] = clock or time.time
        self.timeout = _check_timeout(timeout)
        self._writes_since_cleanup = 0
        self._expired_removed = 0
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
            store = self._store_for(key)
            found = store.get(full_key)
            if found is None:
                return MISSING
            deadline = found[1]
            if deadline is not None:
                now = self._clock()
                if now >= deadline:
                    store.drop_if_expired(full_key, now)
                    return MISSING
        except _FAILURES as exc:
            raise self._failure(exc, "get", key) from exc
        return found

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        full_key = self.key_prefix + check_key(key)
        deadline = self._deadline(ttl)
        with self._errors("set", key):
            store = self._store_for(key)
            store.set(full_key, bytes(blob), deadline)
            self._after_writes(store, 1)

    def delete(self, key: str) -> bool:
        full_key = self.key_prefix + check_key(key)
        with self._errors("delete", key):
            return self._store_for(key).delete(full_key)

    # -- batches -------------------------------------------------------------------------------------------

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """Store every item; one transaction per diskcache directory, so one commit instead of one per key."""
        deadline = self._deadline(ttl)
        with self._errors("set_many"):
            for store, keys in self._group(items).items():
                with store.cache.transact():
                    for key in keys:
                        store.set(self.key_prefix + key, bytes(items[key]), deadline)
                self._after_writes(store, len(keys))

    def delete_many(self, keys: Iterable[str]) -> int:
        with self._errors("delete_many"):
            removed = 0
            for store, group in self._group(keys).items():
                with store.cache.transact():
                    removed += sum(1 for key in group if store.delete(self.key_prefix + key))
            return removed

    def get_many(self, keys: Sequence[str]) -> list[bytes | Missing]:
        return [self.get(key) for key in keys]

    # -- prefixes ------------------------------------------------------------------------------------------

    def clear(self, prefix: str = "") -> int:
        """Remove this driver's keys starting with ``prefix`` (all when empty) by an index range scan."""
        prefix = _check_prefix(prefix)
        lo, hi = _prefix_range(self.key_prefix + prefix)
        with self._errors("clear", prefix):
            return sum(store.delete_range(lo, hi) for store in self._stores_for_prefix(prefix))

    def clear_many(self, prefixes: Iterable[str]) -> int:
        return sum(self.clear(prefix) for prefix in _outermost(prefix for prefix in prefixes if prefix))

    def keys(self, prefix: str = "") -> list[str]:
        """This driver's unexpired keys under ``prefix``, sorted, without ``key_prefix``."""
        prefix = _check_prefix(prefix)
        lo, hi = _prefix_range(self.key_prefix + prefix)
        start = len(self.key_prefix)
        with self._errors("keys", prefix):
            now = self._clock()
            found = [key for store in self._stores_for_prefix(prefix) for key in store.keys(lo, hi, now)]
        return sorted(key[start:] for key in found)

    def size(self) -> int:
        """Number of this driver's unexpired entries (counted in SQLite, not loaded)."""
        lo, hi = _prefix_range(self.key_prefix)
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

    def _store_for(self, key: str) -> _Store:
        """The store that holds ``key`` (a logical key, without ``key_prefix``)."""
        if self._closed:
            raise DriverError(f"this {type(self).__name__} is closed; create a new one")
        return self._root

    def _stores_for_prefix(self, prefix: str) -> Iterator[_Store]:
        """Every store that may hold keys starting with ``prefix`` (a logical prefix)."""
        yield self._store_for(prefix)

    @classmethod
    def _options(cls) -> tuple[str, ...]:
        return _OPTIONS

    # -- helpers -------------------------------------------------------------------------------------------

    def _open_store(self, path: Path) -> _Store:
        policy = EVICTION_POLICIES[self.eviction_policy]
        return _Store(path, size_limit=self.max_bytes, policy=policy, timeout=self.timeout)

    def _deadline(self, ttl: float | None) -> float | None:
        seconds = normalize_ttl(ttl)
        return None if seconds is None else self._clock() + seconds

    def _after_writes(self, store: _Store, count: int) -> None:
        if not self.enable_cleanup:
            return
        # Unlocked on purpose: a race between threads only moves one cleanup by a few writes.
        self._writes_since_cleanup += count
        if self._writes_since_cleanup >= CLEANUP_EVERY_WRITES:
            self._writes_since_cleanup = 0
            self._expired_removed += store.delete_expired(self._clock(), CLEANUP_BATCH)

    def _group(self, keys: Iterable[str]) -> dict[_Store, list[str]]:
        groups: dict[_Store, list[str]] = {}
        for key in keys:
            groups.setdefault(self._store_for(check_key(key)), []).append(key)
        return groups

    @contextmanager
    def _errors(self, operation: str, key: str | None = None) -> Iterator[None]:
        """Translate diskcache, SQLite and OS failures into cachekit's errors (original as ``__cause__``)."""
        try:
            yield
        except _FAILURES as exc:
            raise self._failure(exc, operation, key) from exc

    def _failure(self, exc: BaseException, operation: str, key: str | None = None) -> DriverError:
        where = f" of {key!r}" if key else ""
        if isinstance(exc, diskcache.Timeout):
            return DriverError(
                f"filesystem cache {operation}{where} timed out after {self.timeout} s waiting for "
                f"SQLite's lock in {self.directory}; raise timeout= or reduce concurrent writers"
            )
        if isinstance(exc, (OSError, sqlite3.OperationalError)):
            return DriverUnavailable(
                f"filesystem cache {operation}{where} failed: {self.directory} cannot be used ({exc})"
            )
        return DriverError(f"filesystem cache {operation}{where} failed in {self.directory}: {exc}")


class PartitionAwareFilesystemCache(FilesystemDriver):
    """A filesystem driver with one diskcache per resource and per partition folder.

    cachekit keys read as paths, ``{namespace}/resource={name}[/partition={p}/{field}={value}...]/action=``;
    each key is stored in the diskcache of the folder its path names up to the resource and partition::

        <directory>/<namespace>/resource=users/                                 get, count, list... of users
        <directory>/<namespace>/resource=users/partition=by_region/region=eu/   the eu partition's aggregates
        <directory>/@default/                                                   keys of any other shape

    Folder names are the key's segments, percent-encoded where a character is not filename-safe. A partition
    folder is a diskcache of its own (rather than one database per resource with partition folders for
    files only) so that :meth:`clear_partition` and :meth:`partition_stats` read one small database, and a
    write into one partition never contends for the lock of another. The shape costs file handles: at most
    ``max_open_folders`` databases stay open (least recently used first to close). ``max_bytes`` bounds each
    folder's database, not the sum. ``clear(prefix)``, ``keys(prefix)`` and ``size()`` walk only the folders
    whose path can hold keys under the prefix, and run the same index range scan in each.

    Keys route to partition folders only in cachekit's order (``partition=`` right after ``resource=``);
    other keys with a ``resource=`` segment stay in the resource's folder, and the rest in ``@default``.

    E.g.::

        driver = PartitionAwareFilesystemCache(directory="/var/cache/myapp")
        driver.set("app/resource=users/partition=by_region/region=eu/action=count", b"...")
        driver.clear_partition("users", "by_region", {"region": "eu"})   # only that folder's entries
        driver.partition_stats("users")  # {"app/resource=users/partition=by_region/region=eu": {...}, ...}
    """

    name = "partition-filesystem"

    #: The folder holding keys that do not look like cachekit keys (``@`` never appears in encoded segments).
    DEFAULT_FOLDER = "@default"
    # Folder names stay well inside NAME_MAX (255) and the whole folder inside PATH_MAX; keys that would not
    # fit go to the default folder rather than failing on every write.
    _MAX_SEGMENT = 200
    _MAX_FOLDER = 1000
    _MAX_DEPTH = 16

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
        max_open_folders: int = 64,
        **unknown: Any,
    ) -> None:
        """The plain driver's options, plus ``max_open_folders``: how many folder databases stay open."""
        if type(max_open_folders) is not int or max_open_folders < 1:
            raise ConfigurationError(f"max_open_folders must be an int >= 1; got {max_open_folders!r}")
        self.max_open_folders = max_open_folders
        self._folders: OrderedDict[tuple[str, ...], _Store] = OrderedDict()
        self._folders_lock = threading.RLock()
        super().__init__(
            directory=directory, create_directory=create_directory, max_bytes=max_bytes,
            eviction_policy=eviction_policy, enable_cleanup=enable_cleanup, key_prefix=key_prefix,
            clock=clock, timeout=timeout, **unknown,
        )

    # -- partitions ----------------------------------------------------------------------------------------

    def clear_partition(
        self,
        resource: str,
        partition: str,
        partition_values: Mapping[str, object] | None = None,
        *,
        namespace: str | None = None,
    ) -> int:
        """Remove this driver's entries of one partition; return how many were removed.

        ``partition_values`` selects the folders holding every given ``field=value`` (``None`` or ``{}``: all
        values of the partition); ``namespace=None`` matches the resource in every namespace.
        """
        with self._errors("clear_partition", f"{resource}/{partition}"):
            lo, hi = _prefix_range(self.key_prefix)
            return sum(
                self._store_at(folder).delete_range(lo, hi)
                for folder in self._partition_folders(resource, partition, partition_values, namespace)
            )

    def partition_stats(self, resource: str | None = None) -> dict[str, dict[str, Any]]:
        """Per-folder stats, keyed by folder path: namespace, resource, partition, values, entries, bytes.

        The resource folder itself (its unpartitioned entries) is listed with ``partition`` ``None``.
        """
        lo, hi = _prefix_range(self.key_prefix)
        stats: dict[str, dict[str, Any]] = {}
        with self._errors("partition_stats", resource):
            now = self._clock()
            for folder in self._walk(""):
                info = _describe(folder)
                if resource is not None and info["resource"] != resource:
                    continue
                store = self._store_at(folder)
                entries = store.count(lo, hi, now)
                stats["/".join(folder)] = {**info, "entries": entries, "bytes": store.volume()}
        return stats

    def stats(self) -> dict[str, Any]:
        """The plain driver's stats summed over every folder, plus ``folders`` and ``partitions`` counts."""
        stats = super().stats()
        with self._errors("stats"):
            folders = [_describe(folder) for folder in self._walk("")]
        stats["folders"] = len(folders)
        stats["partitions"] = sum(1 for info in folders if info["partition"] is not None)
        return stats

    def close(self) -> None:
        """Close every open folder's database (the calling thread's connections). Safe to call twice."""
        with self._folders_lock:
            self._closed = True
            stores, self._folders = list(self._folders.values()), OrderedDict()
        for store in stores:
            store.close()
        self._root.close()

    # -- routing -------------------------------------------------------------------------------------------

    @classmethod
    def _options(cls) -> tuple[str, ...]:
        return (*_OPTIONS, "max_open_folders")

    def _root_path(self) -> Path:
        return self.directory / self.DEFAULT_FOLDER

    def _store_for(self, key: str) -> _Store:
        folder = self._folder_of(key)
        return super()._store_for(key) if folder is None else self._store_at(folder)

    def _stores_for_prefix(self, prefix: str) -> Iterator[_Store]:
        yield super()._store_for(prefix)
        for folder in self._walk(prefix):
            yield self._store_at(folder)

    def _folder_of(self, key: str) -> tuple[str, ...] | None:
        """The folder segments of a cachekit key, or ``None`` for the default folder."""
        if "resource=" not in key:
            return None
        segments = key.split("/")
        leading = segments[: self._MAX_DEPTH]
        resource = next((i for i, segment in enumerate(leading) if segment.startswith("resource=")), None)
        if resource is None:
            return None
        end = resource + 1
        if end < len(segments) and segments[end].startswith("partition="):
            fields = end + 1
            while fields < len(segments) and _is_field(segments[fields]):
                fields += 1
            if fields > end + 1:
                end = fields
        folder = tuple(segments[:end])
        lengths = [len(_encode(segment)) for segment in folder]
        if min(lengths) == 0 or max(lengths) > self._MAX_SEGMENT or sum(lengths) > self._MAX_FOLDER:
            return None
        return folder

    def _store_at(self, folder: tuple[str, ...]) -> _Store:
        if self._closed:
            raise DriverError(f"this {type(self).__name__} is closed; create a new one")
        with self._folders_lock:
            store = self._folders.get(folder)
            if store is not None:
                self._folders.move_to_end(folder)
                return store
            store = self._open_store(self.directory.joinpath(*map(_encode, folder)))
            self._folders[folder] = store
            if len(self._folders) > self.max_open_folders:
                _, oldest = self._folders.popitem(last=False)
                # Closes this thread's connection; other threads' close when the store is garbage-collected.
                oldest.close()
            return store

    def _walk(self, prefix: str) -> Iterator[tuple[str, ...]]:
        """Folder segments of every database on disk that may hold keys under ``prefix`` (any process's)."""
        *complete, partial = prefix.split("/")
        complete_lower = [segment.lower() for segment in complete]
        partial_lower = partial.lower()

        def compatible(depth: int, segment: str) -> bool:
            # Compared case-insensitively: on macOS/Windows "region=EU" and "region=eu" share one folder, and
            # visiting a folder too many costs one indexed query, missing one would leave stale entries.
            if depth < len(complete_lower):
                return segment.lower() == complete_lower[depth]
            return depth > len(complete_lower) or segment.lower().startswith(partial_lower)

        def visit(path: Path, folder: tuple[str, ...], in_resource: bool) -> Iterator[tuple[str, ...]]:
            if in_resource and (path / "cache.db").is_file():
                yield folder
            try:
                with os.scandir(path) as scan:
                    entries = sorted(scan, key=lambda entry: entry.name)
            except (FileNotFoundError, NotADirectoryError):
                return
            for entry in entries:
                # At and below a resource folder, every folder of ours has a "=": the others are diskcache's.
                if not entry.is_dir(follow_symlinks=False) or (in_resource and "=" not in entry.name):
                    continue
                if not folder and entry.name == self.DEFAULT_FOLDER:
                    continue
                segment = unquote(entry.name)
                if compatible(len(folder), segment):
                    yield from visit(
                        Path(entry.path), (*folder, segment), in_resource or segment.startswith("resource=")
                    )

        yield from visit(self.directory, (), False)

    def _partition_folders(
        self,
        resource: str,
        partition: str,
        partition_values: Mapping[str, object] | None,
        namespace: str | None,
    ) -> list[tuple[str, ...]]:
        # Key segments are percent-encoded, and lower-cased in a case-insensitive namespace: compare decoded
        # and case-insensitively. Clearing a partition that differs only in case costs a few misses; missing
        # the right one would leave stale entries.
        given = (partition_values or {}).items()
        wanted = {(str(field).lower(), str(value).lower()) for field, value in given}
        found = []
        for folder in self._walk("" if namespace is None else f"{namespace}/"):
            info = _describe(folder)
            if namespace is not None and info["namespace"] != namespace:
                continue
            if info["resource"].lower() != resource.lower():
                continue
            if (info["partition"] or "").lower() != partition.lower():
                continue
            values = {(field.lower(), value.lower()) for field, value in info["partition_values"].items()}
            if wanted <= values:
                found.append(folder)
        return found


# -- validation ----------------------------------------------------------------------------------------------


def _check_directory(directory: object, create: object) -> Path:
    create = _check_bool("create_directory", create)
    if directory is None:
        raise ConfigurationError(
            "the filesystem driver needs a directory: pass directory='/path/to/cache' "
            "(created when missing)"
        )
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
        raise ConfigurationError(f"directory must be a non-empty str or os.PathLike; got {directory!r}")
    path = Path(os.path.abspath(Path(os.fspath(directory)).expanduser()))
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"cache directory {str(path)!r} is not a directory; pick another path")
    if not path.exists():
        if not create:
            raise ConfigurationError(
                f"cache directory {str(path)!r} does not exist and create_directory=False; "
                "create it first or pass create_directory=True"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create cache directory {str(path)!r}: {exc}") from exc
    return path


def _check_max_bytes(max_bytes: object) -> int:
    if max_bytes is None:
        return DEFAULT_MAX_BYTES
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ConfigurationError(
            f"max_bytes must be a positive int (bytes), or None for diskcache's default of 1 GiB; "
            f"got {max_bytes!r}"
        )
    return max_bytes


def _check_policy(policy: object) -> str:
    normalized = policy.strip().lower() if isinstance(policy, str) else policy
    if normalized not in EVICTION_POLICIES:
        raise ConfigurationError(
            f"eviction_policy must be one of {sorted(EVICTION_POLICIES)}; got {policy!r}"
        )
    return str(normalized)


def _check_bool(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{option} must be True or False; got {value!r}")
    return value


def _check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ConfigurationError(f"timeout must be a positive number of seconds; got {timeout!r}")
    return float(timeout)


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise ConfigurationError(f"prefix must be a string (empty for all keys); got {prefix!r}")
    return prefix


# -- keys and folders ----------------------------------------------------------------------------------------


def _prefix_range(prefix: str) -> tuple[str, str | bytes]:
    """``(lo, hi)``: the TEXT keys starting with ``prefix`` are exactly ``lo <= key < hi`` in SQLite.

    SQLite compares TEXT as UTF-8 bytes, which orders strings as Python orders code points, so the first
    string past every extension of ``prefix`` is ``prefix`` with its last character incremented. A BLOB sorts
    after all TEXT, so ``b""`` bounds the empty prefix.
    """
    head = prefix
    while head:
        following = ord(head[-1]) + 1
        if following <= 0x10FFFF:
            if 0xD800 <= following <= 0xDFFF:  # surrogates cannot appear in stored (UTF-8) keys
                following = 0xE000
            return prefix, head[:-1] + chr(following)
        head = head[:-1]
    return prefix, b""


def _outermost(prefixes: Iterable[str]) -> list[str]:
    """Drop prefixes that another given prefix already covers."""
    kept: list[str] = []
    for prefix in sorted(set(prefixes)):
        if not kept or not prefix.startswith(kept[-1]):
            kept.append(prefix)
    return kept


def _is_field(segment: str) -> bool:
    """Whether a key segment after ``partition=`` is a ``field=value`` of the partition."""
    return "=" in segment and not segment.startswith("action=")


def _encode(segment: str) -> str:
    """A filename for a key segment: percent-encoded, reversible with :func:`urllib.parse.unquote`."""
    encoded = quote(segment, safe="=-_.,+")
    return encoded.replace(".", "%2E") if encoded in {".", ".."} else encoded


def _describe(folder: tuple[str, ...]) -> dict[str, Any]:
    """Namespace, resource, partition and partition values named by a folder's segments (percent-decoded)."""
    index = next(i for i, segment in enumerate(folder) if segment.startswith("resource="))
    partition = unquote(folder[index + 1].partition("=")[2]) if len(folder) > index + 1 else None
    values = {}
    for segment in folder[index + 2 :]:
        field, _, value = segment.partition("=")
        values[unquote(field)] = unquote(value)
    return {
        "namespace": "/".join(folder[:index]),
        "resource": unquote(folder[index].partition("=")[2]),
        "partition": partition,
        "partition_values": values,
    }
