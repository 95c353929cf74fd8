"""The diskcache layer under the filesystem drivers: a raw-bytes :class:`diskcache.Disk`, and one directory's store.

**A cache directory is untrusted input.** Anyone who can write to it can add rows to its SQLite database, and
diskcache's own :class:`~diskcache.Disk` would unpickle a pickle-mode row during ``get`` (code runs in the
reader), follow a row's ``filename`` anywhere (``/dev/zero`` reads until memory runs out), and delete that file
when the row is dropped. :class:`RawBytesDisk` stores every value inline as a BLOB (no value files, whatever
its size: values are capped by the codec's ``max_value_bytes``) and accepts back only such rows; anything else
is a :class:`RefusedRow`, which the store deletes by rowid, so that no file is opened or removed. It removes
a value file only when the name has diskcache's own shape (``ab/cd/<28 hex>.val``) and resolves to a regular
file inside the directory: files of entries written by older versions are cleaned up, nothing else is.

**A store notices when its directory is deleted or replaced.** SQLite keeps reading and writing an unlinked
database through the connections already open, so a deleted directory would silently become a private cache
nobody else sees (and invalidations by other processes would be lost). Every :data:`REVALIDATE_EVERY` seconds
(and right after any failure) the driver compares the ``cache.db`` file's device and inode with the one it
opened, and reopens (recreating the directory) when they differ.

**Reads never take the write lock.** diskcache's ``get`` runs in a write transaction under the ``lru`` and
``lfu`` policies, to update the access time; here a hit is one SELECT, and the access time (or count) is
bumped by a best-effort UPDATE that does not wait for the lock (``busy_timeout`` 0) and ignores a full disk.
So a hit never fails or waits because of writers, a stuck transaction or a full disk.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any, Final

import diskcache
from diskcache.core import MODE_BINARY, MODE_NONE, MODE_PICKLE, MODE_RAW, MODE_TEXT, UNKNOWN

__all__ = ["REVALIDATE_EVERY", "RawBytesDisk", "RefusedRow", "Store"]

#: Seconds between checks that the store's ``cache.db`` is still the file it opened.
REVALIDATE_EVERY: Final = 0.25
_DBNAME = "cache.db"
_VALUE_FILE = re.compile(r"[0-9a-f]{2}[/\\][0-9a-f]{2}[/\\][0-9a-f]{28}\.val")
_MODES = {
    MODE_NONE: "mode-none", MODE_RAW: "raw", MODE_BINARY: "binary file", MODE_TEXT: "text file", MODE_PICKLE: "pickle",
}
_TOUCH_LRU = "UPDATE Cache SET access_time = ? WHERE rowid = ?"
_TOUCH_LFU = "UPDATE Cache SET access_count = access_count + 1 WHERE rowid = ?"


class RefusedRow(Exception):
    """A row cachekit did not write: a pickle, a file reference, a pickled key or a value that is not bytes."""


class RawBytesDisk(diskcache.Disk):  # type: ignore[misc]
    """A diskcache ``Disk`` for ``str`` keys and ``bytes`` values, both stored inline; refuses everything else."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"the filesystem driver stores str keys only; got {type(key).__name__}")
        return key, True

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise RefusedRow("a pickled key: not read (unpickling runs code)")
        return bytes(key) if isinstance(key, sqlite3.Binary) else key

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, None, Any]:
        if read or type(value) is not bytes:
            raise TypeError(f"the filesystem driver stores bytes only; got {type(value).__name__}")
        return 0, MODE_RAW, None, sqlite3.Binary(value)

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> bytes:
        if mode == MODE_RAW and filename is None and not read and isinstance(value, bytes):
            return value
        if mode != MODE_RAW:
            what = f"{_MODES.get(mode, f'mode {mode!r}')} row"
        elif filename is not None:
            what = "file reference row"
        else:
            what = f"row holding a {type(value).__name__}"
        raise RefusedRow(f"a {what}: not read (cachekit writes raw bytes rows only)")

    def filename(self, key: Any = UNKNOWN, value: Any = UNKNOWN) -> tuple[str, str]:
        raise TypeError("the filesystem driver never writes value files")

    def remove(self, file_path: Any) -> None:
        """Remove a value file of diskcache's own naming inside the directory; leave anything else alone."""
        if not isinstance(file_path, str) or not _VALUE_FILE.fullmatch(file_path):
            return
        root = os.path.realpath(self._directory)
        full = os.path.realpath(os.path.join(root, file_path))
        if os.path.commonpath([root, full]) != root:
            return
        with suppress(OSError):
            if stat.S_ISREG(os.lstat(full).st_mode):
                os.remove(full)
            os.removedirs(os.path.dirname(full))


class Store:
    """One diskcache directory: raw-bytes reads and writes, range scans, and the identity of its database."""

    __slots__ = ("_busy_ms", "_touch", "cache", "check_at", "identity", "path")

    def __init__(self, path: Path, *, size_limit: int, policy: str, timeout: float) -> None:
        self.path = path
        # Settings are passed on every open: diskcache persists them, so the last opener's options win.
        self.cache = diskcache.Cache(
            str(path), timeout=timeout, size_limit=size_limit, eviction_policy=policy, tag_index=True,
            disk=RawBytesDisk,
        )
        self.identity = _identity(path)
        self.check_at = time.monotonic() + REVALIDATE_EVERY
        self._busy_ms = int(timeout * 1000)
        self._touch = {"least-recently-used": _TOUCH_LRU, "least-frequently-used": _TOUCH_LFU}.get(policy)

    # -- entries ---------------------------------------------------------------------------------------------

    def get(self, full_key: str, limit: int | None = None) -> tuple[bytes, float | None] | None:
        """``(blob, deadline)`` or ``None``; :class:`RefusedRow` (after deleting the row) for a foreign row, and
        for a value over ``limit`` bytes, which is never loaded (``length()`` comes from the record header)."""
        if limit is None:
            rows = self.cache._sql(
                "SELECT rowid, tag, mode, filename, value FROM Cache WHERE key = ? AND raw = 1",
                (full_key,),
            ).fetchall()
        else:
            rows = self.cache._sql(
                "SELECT rowid, tag, mode, filename, CASE WHEN length(value) <= ? THEN value END FROM Cache "
                "WHERE key = ? AND raw = 1",
                (limit, full_key),
            ).fetchall()
        if not rows:
            return None
        ((rowid, tag, mode, filename, value),) = rows
        if value is None and limit is not None and filename is None:
            self._delete_row(rowid)
            raise RefusedRow(f"a value over {limit} bytes (max_value_bytes plus the envelope): not read")
        try:
            blob = self.cache._disk.fetch(mode, filename, value, False)
        except RefusedRow:
            self._delete_row(rowid)
            raise
        if self._touch is not None:
            self._touch_row(rowid)
        return blob, (float(tag) if isinstance(tag, (int, float)) else None)

    def set(self, full_key: str, blob: bytes, deadline: float | None) -> None:
        self.cache.set(full_key, blob, tag=deadline)

    def delete(self, full_key: str) -> bool:
        return bool(self.cache.delete(full_key))

    # -- ranges ----------------------------------------------------------------------------------------------

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

    # -- lifetime --------------------------------------------------------------------------------------------

    def replaced(self) -> bool:
        """Whether ``cache.db`` is gone or is another file than the one this store opened."""
        return _identity(self.path) != self.identity

    def abandon(self) -> None:
        """After a failure: roll back a transaction the calling thread's connection may have left open."""
        con = getattr(self.cache._local, "con", None)
        if con is not None and con.in_transaction:
            with suppress(sqlite3.Error):
                con.rollback()
        if self.cache._txn_id == threading.get_ident():  # another thread's transaction is its own business
            self.cache._txn_id = None

    def close(self) -> None:
        self.cache.close()

    # -- helpers ---------------------------------------------------------------------------------------------

    def _delete_row(self, rowid: int) -> None:
        # By rowid, with no file cleanup: the row's filename is whatever its writer put there.
        with suppress(sqlite3.Error):
            self.cache._sql("DELETE FROM Cache WHERE rowid = ?", (rowid,))

    def _touch_row(self, rowid: int) -> None:
        con = self.cache._con
        try:
            con.execute("PRAGMA busy_timeout = 0")
            con.execute(self._touch, (time.time(), rowid) if self._touch is _TOUCH_LRU else (rowid,))
        except sqlite3.Error:
            pass  # locked by a writer, or the disk is full: the recency bump is best-effort
        finally:
            with suppress(sqlite3.Error):
                con.execute(f"PRAGMA busy_timeout = {self._busy_ms}")

    def _delete_selected(self, where: str, args: tuple[Any, ...], *, limit: int | None) -> int:
        removed = 0
        while limit is None or removed < limit:
            batch = 500 if limit is None else min(500, limit - removed)
            with self.cache.transact():
                rows = self.cache._sql(
                    f"SELECT key FROM Cache WHERE raw = 1 AND {where} LIMIT ?", (*args, batch)
                ).fetchall()
                removed += sum(1 for (key,) in rows if self.cache.delete(key))
            if len(rows) < batch:
                break
        return removed


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path / _DBNAME)
    except OSError:
        return None
    return found.st_dev, found.st_ino
