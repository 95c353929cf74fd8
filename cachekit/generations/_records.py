"""Generation records that cachekit parses itself: integers (and 8-byte epoch tokens), never pickles or files.

A generation store lives beside the entries, so whoever can write the entries can write it too, and it is
read far more often: the filesystem store's epoch is polled every 50 ms in every process, with no read by the
app. diskcache's default ``Disk`` would unpickle a pickle-mode row there (code runs in every process, 19 times
a second), follow a row's ``filename`` (``/dev/zero`` is read until memory runs out) and delete that file when
the row expires. So the ``~generations`` database of a filesystem cache is opened with :class:`RecordDisk`,
which writes only inline integers and 8-byte tokens and never opens or removes a file, and it is read with
:func:`select_record`, one SELECT that returns a value only when it is such an inline integer or short token
(SQLite answers ``typeof`` and ``length`` from the record header: a planted 1 GiB blob is never loaded).

A record that is absent reads as :data:`ABSENT` (the store may create it); one that is present but not what
cachekit writes (an integer from :data:`~cachekit.generations._values.COUNTER_LIMIT` up included) reads as
:data:`UNPARSABLE`, which the stores turn into a *private* generation (``_values.private_value``): a random
negative number no other process uses. So a planted record makes this process miss, never share or roll back
entries; the next bump overwrites it with a fresh counter.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Final

import diskcache
from diskcache.core import MODE_RAW, UNKNOWN

from ._signing import SEALED_SIZE
from ._values import COUNTER_LIMIT

__all__ = ["ABSENT", "EPOCH_SIZE", "UNPARSABLE", "RecordDisk", "parse_counter", "select_record"]

#: No record (or an expired one).
ABSENT: Final = "absent"
#: A record cachekit did not write (a pickle, a file reference, text, a negative or oversized value).
UNPARSABLE: Final = "unparsable"
#: Bytes of an epoch token.
EPOCH_SIZE: Final = 8
_LARGEST = (1 << 63) - 1

# The value is fetched only when it is an integer or a blob of at most EPOCH_SIZE bytes; typeof() and length()
# of a column are answered from the record header, so an oversized blob is never loaded.
_SELECT = (
    "SELECT mode, filename, expire_time, typeof(value), "
    f"CASE WHEN typeof(value) = 'integer' OR (typeof(value) = 'blob' AND length(value) <= {SEALED_SIZE}) "
    "THEN value END FROM Cache WHERE key = ? AND raw = 1"
)


class RecordDisk(diskcache.Disk):  # type: ignore[misc]
    """A diskcache ``Disk`` for the generation records: ``str`` keys; inline integers or 8-byte tokens only.

    It never writes a value file, so it never opens or removes one: ``remove`` (called by ``expire()``,
    ``set`` and ``add`` with the ``filename`` column of the row they replace) does nothing, whatever another
    writer put in that column. Reads do not go through ``fetch`` but through :func:`select_record`.
    """

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"generation records have str keys only; got {type(key).__name__}")
        return key, True

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise TypeError("a pickled key in the generation records: not read (unpickling runs code)")
        return key

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, None, Any]:
        if not read and type(value) is int and 0 < value <= _LARGEST:
            return 0, MODE_RAW, None, value
        if not read and type(value) is bytes and len(value) in (EPOCH_SIZE, SEALED_SIZE):
            return 0, MODE_RAW, None, sqlite3.Binary(value)
        raise TypeError(
            f"generation records hold positive 64-bit integers, {EPOCH_SIZE}-byte tokens or {SEALED_SIZE}-byte "
            "sealed values only"
        )

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        raise TypeError("generation records are read with select_record, never through diskcache's get")

    def filename(self, key: Any = UNKNOWN, value: Any = UNKNOWN) -> tuple[str, str]:
        raise TypeError("generation records never have value files")

    def remove(self, file_path: Any) -> None:
        """Nothing to remove: no record of ours has a file, and another writer's ``filename`` is not followed."""


def select_record(sql: Any, key: str, now: float) -> int | bytes | str:
    """The record under ``key``: an ``int`` or ``bytes`` cachekit wrote, :data:`ABSENT` or :data:`UNPARSABLE`.

    ``sql`` is diskcache's ``Cache._sql`` (of a cache opened with :class:`RecordDisk`); ``now`` the wall clock,
    for the row's ``expire_time``.
    """
    rows = sql(_SELECT, (key,)).fetchall()
    if not rows:
        return ABSENT
    mode, filename, expire_time, kind, value = rows[0]
    if isinstance(expire_time, (int, float)) and expire_time <= now:
        return ABSENT  # expired (diskcache's own reading); replaced by the next add or set
    if mode != MODE_RAW or filename is not None:
        return UNPARSABLE
    if kind == "integer" and isinstance(value, int) and 0 < value < COUNTER_LIMIT:
        return value
    if kind == "blob" and isinstance(value, bytes) and len(value) in (EPOCH_SIZE, SEALED_SIZE):
        return value
    return UNPARSABLE


def parse_counter(found: int | bytes | str) -> int | str:
    """A counter from :func:`select_record`'s answer: the ``int``, :data:`ABSENT`, else :data:`UNPARSABLE`."""
    if isinstance(found, int) or found == ABSENT:
        return found
    return UNPARSABLE
