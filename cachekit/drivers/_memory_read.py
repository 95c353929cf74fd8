"""The hit path of a namespace over the memory driver: one function from a key to its value.

:meth:`Cache._read <cachekit.Cache>` calls ``driver.get`` and then the codec: three Python calls and a few
dozen attribute lookups per hit. Over the memory driver the namespace puts this reader on its instance
instead (``cache._read``): the driver's dict, clock and policy are closure cells, so a hit is a dict lookup,
a deadline check, an LRU move and, in bytes mode, a copy of the value decoded at the entry's first hit (see
:mod:`cachekit.codecs._copies`). It does what ``Cache._read`` does over ``MemoryDriver.get``, and gives the
same values: the two are tested side by side (tests/unit/test_memory_reader.py).

The decoded value is kept *in the driver's entry* (:meth:`MemoryDriver._keep
<cachekit.drivers.memory.MemoryDriver>`): counted in the driver's bytes at its estimated real size, bounded by
``decoded_cache_bytes``, and gone with the entry when it is evicted, expired, overwritten or deleted. A write
stores a new entry, so a kept value never outlives the blob it was decoded from.
:func:`tier_decoder` does the same for hits of a memory tier in front of a shared driver.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Protocol

from .._types import MISSING
from ..codecs._copies import plan
from ..errors import CodecError
from ..stats import ReadCounts
from .memory import Entry, MemoryDriver

__all__ = ["first_hit", "memory_reader", "tier_decoder"]


class _Reader(Protocol):
    """What the reader reports failures to: the namespace (held weakly: the reader lives on it)."""

    def _backend_failed(self, key: str | None, exc: BaseException) -> None: ...

    def _drop(self, key: str) -> None: ...


def memory_reader(
    driver: MemoryDriver,
    cache: _Reader,
    counts: ReadCounts,
    decode: Callable[[Any], Any] | None,
    copies: bool,
    decode_at: Callable[[str, Any], Any] | None = None,
) -> Callable[[str], Any]:
    """``cache._read`` over ``driver``: the value or :data:`~cachekit.MISSING`; never raises (fail open).

    :param counts: the namespace's hit and miss counters.
    :param decode: the codec's decode (``None`` in objects mode: entries are the values).
    :param copies: give hits copies of values decoded once (only for a codec whose blobs are trusted as
        written: see :meth:`Codec.trust_local_blobs <cachekit.codecs.Codec.trust_local_blobs>`).
    :param decode_at: ``decode_at(key, blob)``, used instead of ``decode`` when given (a signing codec binds
        each entry to its key).
    """
    data, clock, prefix, lru = driver._data, driver._clock, driver._prefix, driver._lru
    lookup, move = data.get, driver._touch  # the LRU move, or the TinyLFU read buffer's append
    owner = weakref.ref(cache)  # not the cache itself: no reference cycle keeps a dropped Cache alive
    first: Callable[[str, Entry], Any] | None = None  # the entry's first hit (objects mode: none, entries are values)
    if decode_at is not None:  # a signing codec binds each entry to its key: decoded on every hit, never kept
        first = _keyed_decoding(decode_at, len(prefix or ""))
    elif decode is not None:
        first = _first_hit_of(driver, decode) if copies and driver.kept_budget > 0 else _decoding(decode)

    def read(key: str) -> Any:
        # MemoryDriver.get and Cache._read in one frame: every line runs on every hit.
        try:
            full = prefix + key if prefix else key
            entry = lookup(full)
            if entry is not None:
                deadline = entry[1]
                if deadline is not None and deadline <= clock():
                    driver._expire(full, entry)
                    entry = None
                elif lru:
                    try:
                        move(full)
                    except KeyError:  # deleted by another thread since the lookup; the entry read is still valid
                        pass
            if entry is None:
                counts.misses += 1
                return MISSING
            if first is None:
                value = entry[0]
            else:
                copy = entry[2]
                value = first(full, entry) if copy is None else copy(entry[3])
        except Exception as exc:  # a corrupt blob, a failing clock: fail open like Cache._read
            _failed(owner, key, exc)
            return MISSING
        if value is MISSING:  # expired by its envelope
            counts.misses += 1
            return MISSING
        counts.hits += 1
        return value

    return read


def _failed(owner: weakref.ref[_Reader], key: str, exc: Exception) -> None:
    cache = owner()
    if cache is not None:
        cache._backend_failed(key, exc)
        if isinstance(exc, CodecError):
            cache._drop(key)  # unreadable: the next read stores a good value


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
    """Decode the blob of ``entry`` (stored under ``full``) and keep the value in it when it fits: its value.

    A value with a plan (:func:`cachekit.codecs._copies.plan`) is kept if its bytes fit in the driver's
    ``kept_budget`` (one value at most an eighth of it) and the caller gets a copy; a value with no plan, or too
    large, keeps ``decode`` in its place (later hits decode without trying to plan again). With the budget full
    nothing is kept: a later hit tries again, once evictions, expiries or writes have freed some.
    ``deadline_of``: the envelope's deadline of a blob, for a reader that must check it on each hit.
    """
    blob = entry[0]
    value = decode(blob)
    budget = driver.kept_budget
    if value is MISSING or driver.kept_bytes >= budget:
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
    deadline_of: Callable[[Any], float | None],
    clock: Callable[[], float],
) -> Callable[[str, Any], Any]:
    """``decode(blob)`` as ``decoded(key, blob)`` for a namespace whose first tier is ``driver``.

    A blob that is the very object ``driver`` holds under ``key`` is answered from that entry (a copy of the
    value kept there, see :func:`first_hit`), with the envelope's deadline checked as ``decode`` would; a blob
    from another tier is decoded. The kept value is the entry's: evicted, expired or replaced with it.
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
