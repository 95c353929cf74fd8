"""The in-process memory driver: LRU, FIFO or W-TinyLFU, bounded by entries and by bytes.

Two storage modes:

* ``store="bytes"`` (default): entries are the codec's blobs. Byte accounting counts the blob's length, the
  key's UTF-8 length and the decoded value an entry keeps for its hits (below), so ``max_memory_bytes`` bounds
  what the cache holds; every reader gets its own copy.
* ``store="objects"``: entries are the live Python objects, with no serialization at all: the fastest hits.
  The trade-off: every caller receives *the same object*, so a caller that mutates a result mutates the cached
  value for everyone; and sizes are unknown, so only ``max_size`` (entries) can bound it.

``max_memory_percent`` is a fraction of the memory this process may use: the lower of the host's RAM (psutil)
and the container's cgroup limit (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``).

An entry is one tuple in one ``OrderedDict`` (no per-entry object or dict of our own):

* ``(blob, expires_at, None)``: as written (objects mode: ``(object, expires_at, None)``);
* ``(blob, expires_at, None, None)``: a bytes-mode entry hit once. Its first hit decoded the blob and handed
  that decoding to the caller, keeping nothing: most entries of a cache that sees one-off keys are never hit
  again, and a kept value is most of an entry's memory (issue 22). The length alone tells it apart: the hit body
  reads nothing more than for a new entry;
* ``(blob, expires_at, copier, value, value_bytes, envelope_deadline)``: an entry hit twice or more, with the
  value decoded at its second hit and the plan that copies it for each later hit
  (:meth:`MemoryDriver.reader`, :mod:`cachekit.codecs._copies`). ``value_bytes`` is what the value holds
  (estimated once, when kept), counted in the driver's bytes and in ``decoded_cache_bytes``; the value lives and
  dies with its entry (eviction, expiry, overwrite, delete, clear). An entry whose value has no plan keeps
  ``(blob, expires_at, decode, blob, 0, None)``: every hit decodes, and none plans again.

The accounted bytes of an entry are not stored: they are the blob's and the key's lengths (plus
``value_bytes``), computed again when it leaves.

Eviction: LRU and FIFO use the dict's own order (a hit moves its key to the end under LRU; the front goes
first). ``eviction_policy="tinylfu"`` hands the order to a policy object (:mod:`cachekit.drivers._tinylfu`)
that the driver tells of every key stored, hit (through ``_touch``, one C call), removed or cleared, and asks
for a victim whenever a bound (entries or bytes) requires one.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeAlias

from .._options import check_flag, reject_unknown_options
from .._types import MISSING, Clock, Missing
from ..breaker import CLOSED, CircuitBreaker
from ..codecs._copies import plan
from ..errors import ConfigurationError
from ._tinylfu import TinyLFU
from .base import PROCESS, Driver, ReadCounter, Reader

__all__ = ["MemoryDriver", "available_memory_bytes", "first_hit", "memory_reader", "tier_decoder"]

_POLICIES = ("lru", "fifo", "tinylfu")
_STORES = ("bytes", "objects")
_OPTIONS = ("max_size", "eviction_policy", "max_memory_bytes", "max_memory_percent", "store", "key_prefix",
            "enable_stats", "clock", "decoded_cache_bytes")
#: The default of ``decoded_cache_bytes``: up to 4 MiB of decoded values kept in entries for their hits to copy.
DEFAULT_DECODED_CACHE_BYTES = 4 << 20
#: ``(blob or object, expires_at, None)``, ``(blob, expires_at, None, None)`` once hit, or a kept entry ``(blob,
#: expires_at, copier, value, value_bytes, envelope_deadline)``: see the module docstring.
Entry: TypeAlias = tuple[Any, ...]
_CGROUP_LIMIT_FILES = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def _cgroup_limit() -> int | None:
    for path in _CGROUP_LIMIT_FILES:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        # cgroup v1 reports "no limit" as a huge page-aligned number; treat anything >= 2**60 as unlimited.
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def available_memory_bytes() -> tuple[int, str]:
    """The memory this process may use and where that figure came from (``"cgroup"`` or ``"host"``)."""
    import psutil

    host = int(psutil.virtual_memory().total)
    limit = _cgroup_limit()
    if limit is not None and limit < host:
        return limit, "cgroup"
    return host, "host"


class MemoryDriver(Driver):
    """An in-process LRU/FIFO/W-TinyLFU cache bounded by entries (``max_size``) and bytes.

    E.g.::

        MemoryDriver(max_size=10_000, max_memory_bytes=64 << 20, eviction_policy="lru")
        MemoryDriver(max_memory_percent=0.1)          # 10 % of host RAM or the cgroup limit, the lower
        MemoryDriver(store="objects", max_size=1000)  # live objects: fastest, callers share results
        MemoryDriver(max_size=10_000, eviction_policy="tinylfu")  # a scan does not flush the hot keys

    :param max_size: most entries kept (``0`` or ``None``: no count limit). Default 1000.
    :param eviction_policy: ``"lru"`` (least recently read goes first), ``"fifo"`` (oldest write goes first) or
        ``"tinylfu"`` (W-TinyLFU: a new key must be used more often than the entry it would displace, see
        :mod:`cachekit.drivers._tinylfu`; for caches that see scans or one-off keys).
    :param max_memory_bytes: most bytes kept (keys + blobs + decoded values kept). Not with
        ``max_memory_percent``.
    :param max_memory_percent: a fraction in (0, 1] of the memory available to the process.
    :param store: ``"bytes"`` or ``"objects"`` (see the module docstring).
    :param key_prefix: prepended to every key.
    :param clock: wall clock for TTL deadlines (``time.time``).
    :param decoded_cache_bytes: in bytes mode, an entry's second hit keeps the decoded value in the entry, and
        later hits get a copy of it rather than a fresh decoding (several times faster; each caller still gets
        its own object; an entry hit once keeps nothing). At most this many bytes of decoded values are kept
        at once (their real size, estimated when kept; one value at most an eighth of it), counted in
        ``max_memory_bytes`` too, of which they take at most half; a value goes with its entry. ``0`` decodes
        every hit. Default 4 MiB.
    """

    name = "memory"
    sharing = PROCESS
    blocking = False
    supports_async = True  # the async twins run inline: nothing here waits on I/O
    holds_blobs_in_process = True  # get returns the blob set was given, and only this process reaches it

    def __init__(
        self,
        *,
        max_size: int | None = 1000,
        eviction_policy: str = "lru",
        max_memory_bytes: int | None = None,
        max_memory_percent: float | None = None,
        store: str = "bytes",
        key_prefix: str = "",
        enable_stats: bool = True,
        clock: Clock | None = None,
        decoded_cache_bytes: int = DEFAULT_DECODED_CACHE_BYTES,
        **unknown: Any,
    ) -> None:
        reject_unknown_options("memory driver", unknown, _OPTIONS)
        self._max_size = _check_max_size(max_size)
        self._policy = _check_choice("eviction_policy", eviction_policy, _POLICIES)
        self._store = _check_choice("store", store, _STORES)
        self.stores_objects = self._store == "objects"
        self._max_percent, self._max_bytes = _memory_limit(
            max_memory_bytes, max_memory_percent, self.stores_objects
        )
        if not isinstance(key_prefix, str):
            raise ConfigurationError(f"key_prefix must be a str; got {key_prefix!r}")
        self._prefix = key_prefix
        self._clock: Clock = clock or time.time
        self._enable_stats = check_flag("enable_stats", enable_stats)
        self.decoded_cache_bytes = _check_bytes("decoded_cache_bytes", decoded_cache_bytes)
        # The bytes of decoded values entries may keep: none in objects mode, at most half of a byte limit.
        self.kept_budget = 0 if self.stores_objects else self.decoded_cache_bytes
        if self._max_bytes is not None:
            self.kept_budget = min(self.kept_budget, self._max_bytes // 2)
        self._lru = self._policy != "fifo"  # a hit is noted (moved in the LRU order, or buffered for TinyLFU)
        self._data: OrderedDict[str, Entry] = OrderedDict()  # full key -> entry (see the module docstring)
        #: The admission policy, or None when the dict's order is the eviction order (LRU, FIFO).
        self._admission = TinyLFU(self._max_size) if self._policy == "tinylfu" else None
        #: What a hit calls with its full key (when ``_lru``): move it to the end, or buffer it for the policy.
        self._touch: Callable[[str], None] = (
            self._data.move_to_end if self._admission is None else self._admission.reads.append
        )
        self._bytes = 0  # keys + blobs + kept values
        self.kept_bytes = 0  # kept values alone
        self._lock = threading.Lock()
        self.evictions = self.evicted_due_to_memory = self.evicted_due_to_size = self.expirations = 0

    # -- reads: lock-free; OrderedDict operations are atomic under the GIL ---------------------------------

    def get(self, key: str) -> Any:
        """Return the stored blob (or object, in objects mode), or :data:`~cachekit.MISSING`."""
        if self._prefix:
            key = self._prefix + key
        entry = self._data.get(key)
        if entry is None:
            return MISSING
        expires_at = entry[1]
        if expires_at is not None and expires_at <= self._clock():
            return self._expire(key, entry)
        if self._lru:
            try:
                self._touch(key)
            except KeyError:  # deleted by another thread between the two calls; the value read is still valid
                pass
        return entry[0]

    def reader(
        self,
        counts: ReadCounter,
        failed: Callable[[str, Exception], None],
        decode: Callable[[Any], Any] | None = None,
        *,
        decode_at: Callable[[str, Any], Any] | None = None,
        get: Callable[[str], Any] | None = None,
        trusted: bool = False,
        deadline_of: Callable[[Any], float | None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Reader:
        """The fused reader (:func:`memory_reader`): :meth:`get` and the decode in one frame, and with
        ``trusted`` a copy of the value decoded at the entry's second hit. A subclass that overrides :meth:`get`,
        or a wrapped ``get``, reads through the generic body instead."""
        if get is not None or type(self).get is not MemoryDriver.get:
            return super().reader(counts, failed, decode, decode_at=decode_at, get=get)
        return memory_reader(self, counts, failed, decode, copies=trusted, decode_at=decode_at)

    def blob_decoder(
        self,
        decode: Callable[[Any], Any] | None,
        *,
        decode_at: Callable[[str, Any], Any] | None = None,
        trusted: bool = False,
        deadline_of: Callable[[Any], float | None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Callable[[str, Any], Any] | None:
        """With an unsigned codec, :func:`tier_decoder`: a blob this driver holds is answered from the value kept
        in its entry (the copies :meth:`reader` serves), so ``aget`` and ``get_many`` hits are copies too, not a
        decoding each. ``trusted`` (this driver's own cache): as :meth:`reader` keeps them, the envelope's deadline
        left to the entry's own; else (the first tier of a tiered driver) checked on each hit. Otherwise
        ``decode_at``."""
        if decode is None or decode_at is not None or not self.holds_blobs_in_process:
            return decode_at
        if trusted:
            return tier_decoder(self, decode, None, clock or self._clock)
        if deadline_of is None:
            return decode_at
        return tier_decoder(self, decode, deadline_of, clock or self._clock)

    async def aget(self, key: str) -> Any:
        """:meth:`get`, inline (the hot path of ``async def`` hits)."""
        return self.get(key)

    def get_with_expiry(self, key: str) -> tuple[Any, float | None] | Missing:
        """:meth:`get` with the entry's deadline (a hit is a use: it moves the key in the LRU order too)."""
        full = self._prefix + key
        entry = self._data.get(full)
        if entry is None or (entry[1] is not None and entry[1] <= self._clock()):
            return MISSING if entry is None else self._expire(full, entry)
        if self._lru:
            try:
                self._touch(full)
            except KeyError:  # deleted by another thread between the two calls; the value read is still valid
                pass
        return entry[0], entry[1]

    def keys(self, prefix: str = "") -> list[str]:
        now, start, cut = self._clock(), self._prefix + prefix, len(self._prefix)
        return [
            k[cut:]
            for k, entry in list(self._data.items())
            if k.startswith(start) and (entry[1] is None or entry[1] > now)
        ]

    def size(self) -> int:
        return len(self.keys())

    # -- writes ----------------------------------------------------------------------------------------------

    async def aset(self, key: str, blob: Any, ttl: float | None = None) -> None:
        """:meth:`set`, inline."""
        self.set(key, blob, ttl)

    def set(self, key: str, blob: Any, ttl: float | None = None) -> None:
        """Store ``blob`` (any object in objects mode) for ``ttl`` seconds; evict as the limits require."""
        full = self._prefix + key
        with self._lock:
            self._put(full, blob, ttl)

    def add(self, key: str, blob: Any, ttl: float | None = None) -> bool:
        """Store ``blob`` only if ``key`` holds no live entry (atomic: under the driver's lock)."""
        full = self._prefix + key
        with self._lock:
            if self._live(full) is not None:
                return False
            if ttl != 0:
                self._put(full, blob, ttl)
            return True

    def replace(self, key: str, expected: Any, blob: Any, ttl: float | None = None) -> bool:
        """Compare-and-set (atomic: under the driver's lock); ``ttl`` 0 deletes the entry if it matches."""
        full = self._prefix + key
        with self._lock:
            entry = self._live(full)
            if entry is None or (entry[0] is not expected and entry[0] != expected):
                return False
            if ttl == 0:
                self._remove(full)
            else:
                self._put(full, blob, ttl)
            return True

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._remove(self._prefix + key)

    def clear(self, prefix: str = "") -> int:
        return self.clear_many([prefix]) if prefix else self._clear_all()

    def clear_many(self, prefixes: Iterable[str]) -> int:
        starts = tuple(self._prefix + p for p in prefixes if p)
        if not starts:
            return 0  # an empty prefix means "everything" only in clear(), never in a batch of scopes
        with self._lock:
            doomed = [k for k in self._data if k.startswith(starts)]
            for k in doomed:
                self._remove(k)
        return len(doomed)

    def _clear_all(self) -> int:
        with self._lock:
            if self._prefix:
                doomed = [k for k in self._data if k.startswith(self._prefix)]
                for k in doomed:
                    self._remove(k)
                return len(doomed)
            count = len(self._data)
            self._data.clear()
            if self._admission is not None:
                self._admission.clear()
            self._bytes = self.kept_bytes = 0
            return count

    # -- internals (call with the lock held, except _expire) ----------------------------------------------

    def _live(self, full: str) -> Entry | None:
        entry = self._data.get(full)
        if entry is None or entry[1] is None or entry[1] > self._clock():
            return entry
        return None

    def _put(self, full: str, blob: Any, ttl: float | None) -> None:
        expires_at = None if ttl is None else self._clock() + ttl
        size = 0 if self.stores_objects else len(blob) + _key_bytes(full)
        if self._max_bytes is not None and size > self._max_bytes:
            self._remove(full)
            self.evicted_due_to_memory += 1  # larger than the whole cache: refused, and the old value is gone
            return
        admission = self._admission
        if admission is not None:
            admission.drain()
        old = self._data.get(full)
        # Stored first, then the bounds are restored: only an entry that is alone can be its own victim, and
        # alone it fits. Replaced in place: a concurrent (lock-free) read sees the old or the new entry.
        self._data[full] = (blob, expires_at, None)
        if old is not None:
            self._forget(full, old)
            if admission is None:
                self._data.move_to_end(full)  # a new write, for FIFO too
            else:
                admission.accessed(full)
        elif admission is not None:
            admission.added(full)
        self._bytes += size
        self._trim()

    def _keep(self, full: str, entry: Entry, copier: Callable[[Any], Any], value: Any, size: int,
             deadline: float | None) -> bool:
        """Keep ``value`` (decoded from ``entry``'s blob, ``size`` bytes) in ``entry`` for its hits to copy.

        Under the lock, and only while ``entry`` is still the one stored under ``full`` (a write, delete or
        eviction since the hit made it unreachable: nothing is kept for it) and the value fits in
        ``kept_budget``. ``deadline``: the envelope's, for a reader that must check it (a memory tier). Returns
        whether it was kept.
        """
        with self._lock:
            if self._data.get(full) is not entry or entry[2] is not None or self.kept_bytes + size > self.kept_budget:
                return False
            self._data[full] = (entry[0], entry[1], copier, value, size, deadline)
            self.kept_bytes += size
            self._bytes += size
            if size and self._max_bytes is not None:
                self._trim()
            return True

    def _seen(self, full: str, entry: Entry) -> None:
        """Mark ``entry`` (stored under ``full``, just hit for the first time) as hit once: ``(blob, expires_at,
        None, None)``, so that its next hit keeps the value. Under the lock, and only while ``entry`` is still the
        one stored (a write since the hit is not marked)."""
        with self._lock:
            if self._data.get(full) is entry:
                self._data[full] = (entry[0], entry[1], None, None)

    def _forget(self, full: str, entry: Entry) -> None:
        """Take ``entry`` (stored under ``full``, just removed or replaced) out of the byte counts."""
        if self.stores_objects:
            return
        self._bytes -= len(entry[0]) + _key_bytes(full)
        if len(entry) > 4:
            self._bytes -= entry[4]
            self.kept_bytes -= entry[4]

    def _remove(self, full: str) -> bool:
        entry = self._data.pop(full, None)
        if entry is None:
            return False
        self._forget(full, entry)
        if self._admission is not None:
            self._admission.removed(full)
        return True

    def _expire(self, full: str, entry: Entry) -> Missing:
        with self._lock:
            if self._data.get(full) is entry:
                self._remove(full)
                self.expirations += 1
        return MISSING

    def _trim(self) -> None:
        """Evict until the entry and byte bounds hold again."""
        data = self._data
        if self._max_size:
            while len(data) > self._max_size:
                self._evict_one()
                self.evicted_due_to_size += 1
        if self._max_bytes is not None:
            while data and self._bytes > self._max_bytes:
                self._evict_one()
                self.evicted_due_to_memory += 1

    def _evict_one(self) -> None:
        admission = self._admission
        if admission is None:  # LRU and FIFO evict from the front: LRU moves hits to the end, FIFO never reorders
            full, entry = self._data.popitem(last=False)
        else:
            full = admission.victim()
            entry = self._data.pop(full)
        self._forget(full, entry)
        self.evictions += 1

    # -- introspection ---------------------------------------------------------------------------------------

    @property
    def memory_usage_bytes(self) -> int:
        """Bytes held now (keys + blobs + decoded values kept; 0 in objects mode)."""
        return self._bytes

    def get_memory_stats(self) -> dict[str, Any]:
        """Memory use against the limit, evictions caused by it, and the system memory it was derived from."""
        total, source = available_memory_bytes()
        current, limit = self._bytes, self._max_bytes
        return {
            "current_memory_bytes": current,
            "max_memory_bytes": limit,
            "max_memory_percent": self._max_percent,
            "memory_usage": {"current": current, "max": limit},
            "memory_usage_percent": round(100.0 * current / limit, 2) if limit else 0.0,
            "evicted_due_to_memory": self.evicted_due_to_memory,
            "system_memory": {
                "total": total,
                "source": source,
                "cache_percent": round(100.0 * current / total, 4) if total else 0.0,
            },
        }

    def stats(self) -> dict[str, Any]:
        return {
            "driver": self.name,
            "enabled": self._enable_stats,
            "entries": len(self._data),
            "max_size": self._max_size,
            "eviction_policy": self._policy,
            "store": self._store,
            "memory_usage_bytes": self._bytes,
            "decoded_bytes": self.kept_bytes,
            "max_memory_bytes": self._max_bytes,
            "evictions": self.evictions,
            "evicted_due_to_memory": self.evicted_due_to_memory,
            "evicted_due_to_size": self.evicted_due_to_size,
            "expirations": self.expirations,
        }

    def close(self) -> None:
        with self._lock:
            self._data.clear()
            if self._admission is not None:
                self._admission.clear()
            self._bytes = self.kept_bytes = 0

    def __repr__(self) -> str:
        return f"<MemoryDriver {self._policy} entries={len(self._data)} bytes={self._bytes}>"


def _key_bytes(full: str) -> int:
    """The UTF-8 length of ``full`` (its length when ASCII: no encoding)."""
    return len(full) if full.isascii() else len(full.encode())


def _check_max_size(max_size: int | None) -> int:
    if max_size is None:
        return 0
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
        raise ConfigurationError(f"max_size must be a whole number of entries >= 0 (0: no limit); got {max_size!r}")
    return max_size


def _check_bytes(option: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{option} must be a whole number of bytes >= 0; got {value!r}")
    return value


def _check_choice(option: str, value: object, choices: tuple[str, ...]) -> str:
    normalized = value.strip().lower() if isinstance(value, str) else value
    if normalized not in choices:
        raise ConfigurationError(f"{option} must be one of {list(choices)}; got {value!r}")
    return str(normalized)


def _memory_limit(
    max_bytes: int | None, max_percent: float | None, objects: bool
) -> tuple[float | None, int | None]:
    """Validate the byte limits; return (the percent as given, the limit in bytes)."""
    if max_bytes is not None and max_percent is not None:
        raise ConfigurationError(
            "give either max_memory_bytes or max_memory_percent, not both: one fixed limit, or a fraction of RAM"
        )
    if objects and (max_bytes is not None or max_percent is not None):
        raise ConfigurationError(
            "store='objects' keeps live objects whose size is unknown, so it cannot honour a byte limit; "
            "bound it with max_size, or use store='bytes'"
        )
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ConfigurationError(f"max_memory_bytes must be a whole number of bytes > 0; got {max_bytes!r}")
        return None, max_bytes
    if max_percent is not None:
        if isinstance(max_percent, bool) or not isinstance(max_percent, (int, float)) or not 0 < max_percent <= 1:
            raise ConfigurationError(
                f"max_memory_percent is a fraction in (0, 1] (0.1 means 10 % of RAM); got {max_percent!r}"
            )
        total, _ = available_memory_bytes()
        return float(max_percent), max(1, int(total * max_percent))
    return None, None


# -- the reader (Driver.reader) --------------------------------------------------------------------------------
# The generic body (drivers.base.generic_reader) over MemoryDriver.get is three Python calls and a few dozen
# attribute lookups per hit. This one is a closure over the driver's dict, clock and policy: a hit is a dict
# lookup, a deadline check, an LRU move and, in bytes mode, a copy of the value decoded at the entry's second hit
# (cachekit.codecs._copies). It reads what the generic body reads: tests/unit/test_memory_reader.py (hypothesis)
# and tests/contract/test_reader_contract.py hold it to it.


def memory_reader(
    driver: MemoryDriver,
    counts: ReadCounter,
    failed: Callable[[str, Exception], None],
    decode: Callable[[Any], Any] | None,
    copies: bool,
    decode_at: Callable[[str, Any], Any] | None = None,
) -> Reader:
    """A reader over ``driver``: the value or :data:`~cachekit.MISSING`; never raises (fail open).

    :param counts: the cache's hit and miss counters.
    :param failed: ``failed(key, exc)``: counts the failure and drops a corrupt entry.
    :param decode: the codec's decode (``None`` in objects mode: entries are the values).
    :param copies: give hits copies of values decoded once (only for a codec whose blobs are trusted as
        written: see :meth:`Codec.trust_local_blobs <cachekit.codecs.Codec.trust_local_blobs>`).
    :param decode_at: ``decode_at(key, blob)``, used instead of ``decode`` when given (a signing codec binds
        each entry to its key).
    """
    data, clock, prefix, lru = driver._data, driver._clock, driver._prefix, driver._lru
    lookup, move = data.get, driver._touch  # the LRU move, or the TinyLFU read buffer's append
    # A hit of an entry with nothing kept (its first and second hits); objects mode: none, entries are values.
    first: Callable[[str, Entry], Any] | None = None
    if decode_at is not None:  # a signing codec binds each entry to its key: decoded on every hit, never kept
        first = _keyed_decoding(decode_at, len(prefix or ""))
    elif decode is not None:
        first = _first_hit_of(driver, decode) if copies and driver.kept_budget > 0 else _decoding(decode)

    def read(key: str) -> Any:
        # MemoryDriver.get and generic_reader in one frame: every line runs on every hit.
        try:
            full = prefix + key if prefix else key
            entry = lookup(full)
            if entry is None:
                counts.misses += 1
                return MISSING
            deadline = entry[1]
            if deadline is not None and deadline <= clock():
                driver._expire(full, entry)
                counts.misses += 1
                return MISSING
            if lru:
                try:
                    move(full)
                except KeyError:  # deleted by another thread since the lookup; the entry read is still valid
                    pass
            copy = entry[2]
            if copy is not None:  # a copy of the value kept at its second hit (a trusted codec: never MISSING)
                value = copy(entry[3])
                counts.hits += 1
                return value
            if first is None:  # objects mode: the entry is the value (its third item is always None)
                counts.hits += 1
                return entry[0]
            value = first(full, entry)
        except Exception as exc:  # a corrupt blob, a failing clock: fail open like the generic body
            failed(key, exc)
            return MISSING
        if value is MISSING:  # expired by its envelope
            counts.misses += 1
            return MISSING
        counts.hits += 1
        return value

    return read


def _decoding(decode: Callable[[Any], Any]) -> Callable[[str, Entry], Any]:
    return lambda full, entry: decode(entry[0])


def _keyed_decoding(decode_at: Callable[[str, Any], Any], cut: int) -> Callable[[str, Entry], Any]:
    """``decode_at(key, blob)`` of an entry stored under ``full`` (the driver's prefix, ``cut`` long, removed)."""
    return lambda full, entry: decode_at(full[cut:], entry[0])


def _first_hit_of(driver: MemoryDriver, decode: Callable[[Any], Any]) -> Callable[[str, Entry], Any]:
    return lambda full, entry: first_hit(driver, full, entry, decode, None)


def first_hit(
    driver: MemoryDriver,
    full: str,
    entry: Entry,
    decode: Callable[[Any], Any],
    deadline_of: Callable[[Any], float | None] | None,
) -> Any:
    """A hit of ``entry`` (stored under ``full``) with nothing kept in it: decode its blob; its value.

    The entry's first hit (a 3-tuple, as written) keeps nothing: it marks the entry as hit once
    (:meth:`MemoryDriver._seen`) and returns the decoding itself, which no one else holds. Later hits keep the
    value when it fits: a value with a plan (:func:`cachekit.codecs._copies.plan`) is kept if its bytes fit in
    the driver's ``kept_budget`` (one value at most an eighth of it) and the caller gets a copy; a value with no
    plan, or too large, keeps ``decode`` in its place (later hits decode without trying to plan again). With the
    budget full nothing is kept: a later hit tries again, once evictions, expiries or writes have freed some.
    ``deadline_of``: the envelope's deadline of a blob, for a reader that must check it on each hit.
    """
    blob = entry[0]
    value = decode(blob)
    if value is MISSING:
        return value
    if len(entry) == 3:  # the first hit: most entries get no second, and a kept value is most of an entry
        driver._seen(full, entry)
        return value
    budget = driver.kept_budget
    if driver.kept_bytes >= budget:
        return value
    copier, size = plan(value)
    if copier is None or size > budget >> 3:
        driver._keep(full, entry, decode, blob, 0, None)
        return value
    if driver._keep(full, entry, copier, value, size, None if deadline_of is None else deadline_of(blob)):
        return copier(value)  # never the kept value itself: the caller may mutate what it gets
    return value


def tier_decoder(
    driver: MemoryDriver,
    decode: Callable[[Any], Any],
    deadline_of: Callable[[Any], float | None] | None,
    clock: Callable[[], float],
) -> Callable[[str, Any], Any]:
    """``decode(blob)`` as ``decoded(key, blob)`` for blobs read from ``driver`` (or a tiered driver whose first
    tier it is).

    A blob that is the very object ``driver`` holds under ``key`` is answered from that entry (a copy of the
    value kept there from its second hit, see :func:`first_hit`), with the envelope's deadline checked as
    ``decode`` would (when ``deadline_of`` is given: ``None`` for a codec that trusts the driver's own
    deadlines); a blob from another tier is decoded. The kept value is the entry's: evicted, expired or
    replaced with it.
    """
    data, prefix = driver._data, driver._prefix
    if driver.kept_budget <= 0:
        return lambda key, blob: decode(blob)

    def decoded(key: str, blob: Any) -> Any:
        full = prefix + key if prefix else key
        entry = data.get(full)
        if entry is None or entry[0] is not blob:
            return decode(blob)
        copy = entry[2]
        if copy is None:
            return first_hit(driver, full, entry, decode, deadline_of)
        deadline = entry[5]
        if deadline is not None and deadline <= clock():
            return MISSING  # expired by its envelope
        return copy(entry[3])

    return decoded


def tier_reader(
    driver: MemoryDriver,
    tier: Any,
    generic: Reader,
    counts: ReadCounter,
    decode: Callable[[Any], Any] | None,
    decode_at: Callable[[str, Any], Any] | None,
    deadline_of: Callable[[Any], float | None] | None,
    clock: Callable[[], float],
) -> Reader:
    """The reader of a tiered driver whose first tier (``tier``, a running ``TierState``) is ``driver``.

    ``generic`` is the tiered driver's reader (the generic body over ``TieredDriver.get`` and
    :func:`tier_decoder`). The hit it answers most, an L1 hit of a value already kept in its entry with the tier
    idle (nothing to replay, breaker closed), is answered here in one frame: ``TieredDriver.get``'s L1 bypass,
    ``MemoryDriver.get`` and :func:`tier_decoder` fused, with the same counts (the tier's hit, the cache's hit),
    the same LRU move and the same two deadline checks (the entry's, on the driver's clock; the envelope's, on
    ``clock``). Anything else (a miss, an expired entry, a first or second hit, a tier not idle, a clock that
    raises) is ``generic(key)``, called before this frame changed anything. Without a kept value to copy (an unsigned
    codec, a memory tier that keeps values, a plain ``get``) it is ``generic`` itself.
    """
    if (decode is None or decode_at is not None or deadline_of is None or driver.kept_budget <= 0
            or type(driver).get is not MemoryDriver.get or type(tier.breaker) is not CircuitBreaker):  # fmt: skip
        return generic
    data, own_clock, prefix, lru = driver._data, driver._clock, driver._prefix, driver._lru
    lookup, move = data.get, driver._touch

    def read(key: str) -> Any:
        # TierState.idle, MemoryDriver.get and tier_decoder in one frame: every line runs on every L1 hit.
        if tier._pending_prefixes or tier._pending_keys or tier.breaker._state != CLOSED:
            return generic(key)
        full = prefix + key if prefix else key
        entry = lookup(full)
        if entry is None or entry[2] is None:  # a miss, or the entry's first or second hit: nothing kept yet
            return generic(key)
        try:
            deadline = entry[1]
            if deadline is not None and deadline <= own_clock():
                return generic(key)  # expired: the generic body drops it and walks the other tiers
            deadline = entry[5]
            if deadline is not None and deadline <= clock():
                return generic(key)  # expired by its envelope: a tier hit and a cache miss, as generic counts them
        except Exception:  # a failing clock: the generic body reports it
            return generic(key)
        if lru:
            try:
                move(full)
            except KeyError:  # deleted by another thread since the lookup; the entry read is still valid
                pass
        tier.hits += 1
        value = entry[2](entry[3])
        counts.hits += 1
        return value

    return read
