"""The hit path of a namespace over the memory driver: one function from a key to its value.

:meth:`Cache._read <cachekit.Cache>` calls ``driver.get`` and then the codec: three Python calls and a few
dozen attribute lookups per hit. Over the memory driver the namespace puts this reader on its instance
instead (``cache._read``): the driver's dict, clock and policy are closure cells, so a hit is a dict lookup,
a deadline check, an LRU move and, in bytes mode, a copy of the value decoded at the first hit (see
:mod:`cachekit.codecs._copies`). It does what ``Cache._read`` does over ``MemoryDriver.get``, and gives the
same values: the two are tested side by side (tests/unit/test_memory_reader.py).

Decoded values kept for copying are bounded by the driver's ``decoded_cache_bytes`` (counted in blob bytes;
the whole set is dropped when full) and are used only for the very blob object they were decoded from, so a
write (a new blob) or an eviction never serves an old value.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Protocol

from .._types import MISSING
from ..codecs import Codec
from ..codecs._copies import Copier, copier_for
from ..errors import CodecError
from ..stats import ReadCounts
from .memory import MemoryDriver

__all__ = ["decoded_copies", "memory_reader"]


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
    lookup, move = data.get, data.move_to_end
    owner = weakref.ref(cache)  # not the cache itself: no reference cycle keeps a dropped Cache alive
    decoded = None if decode is None else decoded_copies(decode, driver.decoded_cache_bytes if copies else 0)
    if decode_at is not None:
        decoded = decode_at

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
            value = entry[0] if decoded is None else decoded(key, entry[0])
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


def decoded_copies(
    decode: Callable[[Any], Any], budget: int, clock: Callable[[], float] | None = None
) -> Callable[[str, Any], Any]:
    """``decode(blob)`` as ``decoded(key, blob)``: a blob seen before is answered with a copy of its first
    decoding (values of blobs totalling up to ``budget`` bytes are kept).

    The kept value serves only the very ``bytes`` object it was decoded from (verified then, immutable since).
    With ``clock`` (a codec that checks envelope deadlines, e.g. behind a memory tier), the envelope's deadline
    is kept too and checked on each hit, as ``decode`` would.
    """
    if budget <= 0:
        return lambda key, blob: decode(blob)
    held: dict[str, tuple[Any, Copier, Any, float | None]] = {}  # key -> (blob, copier, value, deadline)
    used = [0]
    largest = max(1, budget // 8)  # one blob never takes more than an eighth of the budget

    def decoded(key: str, blob: Any) -> Any:
        found = held.get(key)
        if found is not None and found[0] is blob:
            deadline = found[3]
            if deadline is not None and clock is not None and deadline <= clock():
                return MISSING  # expired by its envelope
            return found[1](found[2])
        value = decode(blob)
        if value is MISSING or len(blob) > largest:
            return value
        copier = copier_for(value)
        if copier is None:
            return value
        if found is not None:
            used[0] -= len(found[0])
        if used[0] + len(blob) > budget:
            held.clear()
            used[0] = 0
        held[key] = (blob, copier, value, Codec.expires_at(blob) if clock is not None else None)
        used[0] += len(blob)
        return copier(value)  # never the kept value itself: the caller may mutate what it gets

    return decoded
