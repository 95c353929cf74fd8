"""W-TinyLFU admission and eviction for the memory driver (``eviction_policy="tinylfu"``).

The design of Caffeine and theine (Einziger, Friedman, Manes, *TinyLFU: A Highly Efficient Cache Admission
Policy*), written small in Python because theine's core (``theine_core.TlfuCore``, Rust, BSD-3) bounds entries
only, by a count fixed at construction, and keys them by integer hashes: it cannot honour the driver's byte
bounds or its unbounded count, nor tell which string key to evict. The pieces:

* a *window*: an LRU of about 1 % of the entries, where every new key lands;
* a *main* space, segmented: *probation* (entries admitted from the window, or demoted) and *protected* (80 %
  of main: entries hit again while in probation);
* a *frequency sketch*: a count-min sketch of 4-bit-like counters (one byte each, saturating at 15, four per
  key in one table of at least 16 counters per entry, Caffeine's density), aged by halving every counter once
  ``10 x capacity`` accesses were counted;
* *admission*: when room is needed and the window is over its share, its least recent entry (the candidate)
  contests the least recent entry of probation (the victim): the candidate is admitted only if the sketch says
  it is used more often by more than the access that brought it in, otherwise it is the one evicted. A scan of
  keys used once never displaces hot ones, nor does a loop a little larger than the cache churn it.

The policy holds keys only (the driver's dict holds the entries) and never evicts by itself: the driver asks
:meth:`TinyLFU.victim` for a key whenever a bound requires one, so entry and byte bounds (and TTLs, which the
driver checks) are the driver's as with LRU. Hits cost the hit path one C call: the key is appended to a
bounded, lossy read buffer (:attr:`TinyLFU.reads`, a ``deque`` with ``maxlen``) that the driver drains under
its lock before each write; when hits outrun writes by more than :data:`READ_BUFFER` the oldest buffered reads
are dropped, a sample like Caffeine's read buffers. The buffer holds a pass of hits over a few thousand resident
keys: the sketch must see the residents' reads, or their counts fade while every miss is counted and the
contests turn against them (see :data:`READ_BUFFER`).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Final

__all__ = ["READ_BUFFER", "FrequencySketch", "TinyLFU"]

#: Hits buffered between two writes (the oldest are dropped beyond it; the next write applies them all). At 256, a
#: loop over twice a 10,000-entry cache dropped 97 % of its hits (10,000 in a row between two misses): the
#: residents' counts fell to 0 against the misses' 5-6, and they stayed only while sketch collisions happened to
#: favour them (with exact counts 40 % of reads hit, not 44.5 %).
READ_BUFFER: Final = 4096
#: The sketch's capacity before the driver has a count bound or has evicted (grown as entries grow).
_INITIAL_CAPACITY: Final = 1024
_MAX_COUNT: Final = 15
_HALVE: Final = bytes(i >> 1 for i in range(256))


class FrequencySketch:
    """A count-min sketch of how often keys were seen lately, sized for ``capacity`` keys.

    Four counters per key in one ``bytearray`` of a power-of-two length at least ``16 x capacity`` (Caffeine's 16
    counters per entry: after a scan of ``4 x capacity`` one-off keys, about 15 % of unseen keys read as seen, not
    55 % at 8, so a cold candidate rarely ties a resident by collision); a counter
    saturates at 15 and only the smallest of a key's four grow (conservative update). Once ``10 x capacity``
    increments were counted every counter is halved (aging), so yesterday's hot keys fade.
    """

    __slots__ = ("added", "capacity", "mask", "sample", "table")

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        width = 1 << max(4, (16 * self.capacity - 1).bit_length())
        self.table = bytearray(width)
        self.mask = width - 1
        self.sample = 10 * self.capacity
        self.added = 0

    def frequency(self, key: str) -> int:
        """The estimated count of ``key`` (the smallest of its four counters)."""
        table, mask, h = self.table, self.mask, hash(key)
        low, step = h & 0xFFFFFFFF, ((h >> 32) & 0xFFFFFFFF) | 1
        return min(table[low & mask], table[(low + step) & mask], table[(low + 2 * step) & mask],
                   table[(low + 3 * step) & mask])

    def increment(self, key: str) -> None:
        """Count one access of ``key``; halve every counter when the sample is full."""
        # Inlined (no helper call, no generator): this runs at every write and for every buffered hit.
        table, mask, h = self.table, self.mask, hash(key)
        low, step = h & 0xFFFFFFFF, ((h >> 32) & 0xFFFFFFFF) | 1
        a, b, c, d = low & mask, (low + step) & mask, (low + 2 * step) & mask, (low + 3 * step) & mask
        ta, tb, tc, td = table[a], table[b], table[c], table[d]
        least = min(ta, tb, tc, td)
        if least < _MAX_COUNT:
            least += 1
            if ta < least:
                table[a] = least
            if tb < least:
                table[b] = least
            if tc < least:
                table[c] = least
            if td < least:
                table[d] = least
        self.added += 1
        if self.added >= self.sample:
            self.table = bytearray(self.table.translate(_HALVE))
            self.added //= 2


class TinyLFU:
    """The window, probation and protected segments of the driver's keys, and their frequency sketch.

    :param capacity: the driver's ``max_size``, or ``0`` when only bytes bound it (the segments' shares are then
        taken of the entries held when room is needed).

    Invariant (the driver keeps it): every key the driver holds is in exactly one segment, and no other key is.
    """

    __slots__ = ("capacity", "probation", "protected", "reads", "sketch", "window")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.window: OrderedDict[str, None] = OrderedDict()
        self.probation: OrderedDict[str, None] = OrderedDict()
        self.protected: OrderedDict[str, None] = OrderedDict()
        self.reads: deque[str] = deque(maxlen=READ_BUFFER)
        self.sketch = FrequencySketch(capacity or _INITIAL_CAPACITY)

    def __len__(self) -> int:
        return len(self.window) + len(self.probation) + len(self.protected)

    # -- the driver's hooks (under its lock) -------------------------------------------------------------------

    def drain(self) -> None:
        """Apply the buffered hits: count each in the sketch and move it up in its segment."""
        reads = self.reads
        for _ in range(len(reads)):
            self.accessed(reads.popleft())

    def added(self, key: str) -> None:
        """A new key was stored: it enters the window."""
        self.window[key] = None
        self.sketch.increment(key)
        if not self.capacity:
            if len(self) > 2 * self.sketch.capacity:  # bounded by bytes only: grow the sketch
                self.sketch = FrequencySketch(2 * len(self))
            return
        # The window keeps its share while main has room (as Caffeine's does at every write): a key read after it
        # left the window is promoted to protected, so a scan that fills the cache later meets it there. Without
        # this the window grew to every key until the first eviction, and reads while there promoted nothing.
        window, window_share = self.window, max(1, self.capacity // 100)
        room = self.capacity - window_share - len(self.probation) - len(self.protected)
        while len(window) > window_share and room > 0:
            self.probation[window.popitem(last=False)[0]] = None
            room -= 1

    def accessed(self, key: str) -> None:
        """``key`` was read or overwritten: count it; a probation key is promoted to protected."""
        self.sketch.increment(key)
        if key in self.window:
            self.window.move_to_end(key)
        elif key in self.protected:
            self.protected.move_to_end(key)
        elif key in self.probation:
            del self.probation[key]
            self.protected[key] = None
            if len(self.protected) > self._protected_share():  # demote the least recent to probation
                demoted, _ = self.protected.popitem(last=False)
                self.probation[demoted] = None
        # else: evicted or deleted since the hit was buffered

    def removed(self, key: str) -> None:
        """``key`` left the driver (deleted, expired, cleared) other than through :meth:`victim`."""
        for segment in (self.window, self.probation, self.protected):
            if segment.pop(key, 0) is None:
                return

    def clear(self) -> None:
        """Every key left the driver."""
        self.window.clear()
        self.probation.clear()
        self.protected.clear()
        self.reads.clear()

    def victim(self) -> str:
        """Choose the key to evict (the driver holds at least one) and forget it.

        While the window is over its share, its least recent key is the candidate: admitted to probation for
        free while main has room, else against probation's least recent key by frequency (ties keep the
        incumbent, and so does a candidate only one access ahead: see the body). Otherwise main's least recent key
        goes (probation first, then protected, then the window).
        """
        window, probation, protected = self.window, self.probation, self.protected
        # The shares are those of the entries that will be left: one fewer than now (the driver evicts after
        # storing), at most the count bound.
        keep = len(self) - 1 if not self.capacity else min(self.capacity, len(self) - 1)
        window_share = max(1, keep // 100)
        main_share = keep - window_share
        while len(window) > window_share:
            candidate, _ = window.popitem(last=False)
            if len(probation) + len(protected) < main_share:
                probation[candidate] = None  # main has room: admitted
                continue
            if not probation:
                if not protected:
                    return candidate
                demoted, _ = protected.popitem(last=False)
                probation[demoted] = None
            incumbent = next(iter(probation))
            # One access ahead is a tie: the candidate's count holds the access that just brought it in, while the
            # incumbent, probation's least recent, has not had its next one yet. Counted as a win, a loop a little
            # larger than the cache swapped the incumbent out just before its reuse, pass after pass.
            if self.sketch.frequency(candidate) > self.sketch.frequency(incumbent) + 1:
                del probation[incumbent]
                probation[candidate] = None
                return incumbent
            return candidate
        for segment in (probation, protected, window):
            if segment:
                return segment.popitem(last=False)[0]
        raise KeyError("victim() of an empty policy")

    def _protected_share(self) -> int:
        total = self.capacity or len(self)
        return max(1, (total - max(1, total // 100)) * 4 // 5)
