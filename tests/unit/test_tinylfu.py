"""``eviction_policy="tinylfu"``: W-TinyLFU on the memory driver, within its entry and byte bounds."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachekit import MISSING, Cache
from cachekit.drivers._tinylfu import READ_BUFFER, FrequencySketch, TinyLFU
from cachekit.drivers.memory import MemoryDriver, _key_bytes
from tests.conftest import FakeClock

KEYS = st.sampled_from([f"k{i}" for i in range(16)])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, st.integers(0, 40), st.sampled_from([None, 5.0, 50.0])),
        st.tuples(st.just("get"), KEYS, st.just(0), st.none()),
        st.tuples(st.just("delete"), KEYS, st.just(0), st.none()),
        st.tuples(st.just("tick"), KEYS, st.just(0), st.sampled_from([1.0, 10.0])),
        st.tuples(st.just("clear"), KEYS, st.just(0), st.none()),
    ),
    max_size=150,
)


def _record(key: str, n: int) -> dict[str, Any]:
    return {"id": key, "n": n, "tags": ["a"] * (n % 5), "meta": {"k": n}, "note": "x" * n}


def _check_invariants(driver: Any, max_size: int, max_bytes: int | None) -> None:
    data, policy = driver._data, driver._admission
    assert isinstance(policy, TinyLFU)
    segments = [set(policy.window), set(policy.probation), set(policy.protected)]
    assert set().union(*segments) == set(data), "the policy's keys are not the driver's"
    assert sum(map(len, segments)) == len(data), "a key is in two segments"
    if max_size:
        assert len(data) <= max_size
    if max_bytes is not None:
        assert driver.memory_usage_bytes <= max_bytes
    kept = sum(entry[4] for entry in data.values() if len(entry) > 4)
    assert driver.kept_bytes == kept, "an evicted or replaced entry's decoded value is still counted"
    assert driver.memory_usage_bytes == sum(len(e[0]) + _key_bytes(k) for k, e in data.items()) + kept


@settings(max_examples=120, deadline=None)
@given(ops=OPS, max_size=st.integers(0, 10), max_bytes=st.one_of(st.none(), st.integers(200, 3000)))
def test_bounds_hold_no_entry_is_lost_and_decoded_values_go_with_their_entry(
    ops: list[tuple[str, str, int, float | None]], max_size: int, max_bytes: int | None
) -> None:
    clock = FakeClock()
    cache = Cache(
        driver="memory", namespace="tlfu-prop", clock=clock,
        config={"eviction_policy": "tinylfu", "max_size": max_size, "max_memory_bytes": max_bytes},
    )  # fmt: skip
    driver: Any = cache.driver
    model: dict[str, tuple[dict[str, Any], float | None]] = {}  # what was written last, and its deadline
    for op, key, n, arg in ops:
        if op == "set":
            value = _record(key, n)
            cache.set(key, value, ttl=arg)
            model[key] = (value, None if arg is None else clock() + arg)
            got = cache.get(key)
            if max_bytes is None or driver.evicted_due_to_memory == 0 or got is not None:
                assert got == value, "a key just written (and fitting) is not readable"
        elif op == "get":
            got = cache.get(key)
            expected, deadline = model.get(key, (None, None))
            if got is not None:  # a hit is always the last value written, never an expired one
                assert got == expected
                assert deadline is None or deadline > clock()
            elif expected is not None and (deadline is None or deadline > clock()):
                assert driver.evictions > 0, "a live entry went missing with no eviction"
        elif op == "delete":
            cache.delete(key)
            model.pop(key, None)
        elif op == "tick":
            clock.advance(arg or 0)
        else:
            cache.clear()
            model.clear()
        _check_invariants(driver, max_size, max_bytes)


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=60, unique=True), data=st.data())
def test_within_capacity_every_key_stays(keys: list[str], data: st.DataObject) -> None:
    driver = MemoryDriver(eviction_policy="tinylfu", max_size=len(keys))
    for key in keys:
        driver.set(key, key.encode())
    for key in data.draw(st.lists(st.sampled_from(keys), max_size=200)):
        assert driver.get(key) == key.encode()
        driver.set(key, key.encode() + b"!")
        driver.set(key, key.encode())
    assert sorted(driver.keys()) == sorted(keys)
    assert driver.evictions == 0


def test_a_scan_does_not_flush_the_hot_keys_under_tinylfu_but_does_under_lru() -> None:
    survivors = {}
    for policy in ("lru", "tinylfu"):
        driver = MemoryDriver(eviction_policy=policy, max_size=100)
        hot = [f"hot{i}" for i in range(50)]
        for _ in range(10):
            for key in hot:
                if driver.get(key) is MISSING:
                    driver.set(key, b"v")
        for i in range(1000):  # a scan: each key read once, missed and written
            assert driver.get(f"scan{i}") is MISSING
            driver.set(f"scan{i}", b"s")
        survivors[policy] = sum(driver.get(key) is not MISSING for key in hot)
    assert survivors["lru"] == 0
    assert survivors["tinylfu"] >= 45, survivors


@pytest.mark.parametrize(("span", "floor"), [(2000, 0.45), (1100, 0.85)])
def test_a_loop_a_little_larger_than_the_cache_keeps_a_stable_resident_half(span: int, floor: float) -> None:
    """Issue 22, item 3: a loop over twice the capacity. Every key is counted once a pass, so the window's
    candidate, counted just now, led probation's least recent key (whose next read is still to come) by one, won,
    and swapped it out just before its reuse: 41-42 % of reads hit (theine 45-46 %). A lead of one access is a tie
    now; the residents stay, and about half the reads after the first pass hit (0.47; over 1.1 times the
    capacity 0.876, where the old rule's 0.81 is told apart under every hash seed, as 0.42-0.46 is not)."""
    ratio = _loop_hit_ratio(MemoryDriver(eviction_policy="tinylfu", max_size=1000), span, 40_000)
    assert ratio >= floor, ratio


def test_keys_leave_the_window_while_main_has_room_so_their_reads_protect_them() -> None:
    """Hot keys written and read before the cache is ever full: their reads must promote them to protected (the
    window keeps its share at every write), so the scan that fills the cache later contests only probation. The
    window used to hold every key until the first eviction: the reads promoted nothing, the hot keys sat in
    probation and the scan's contests took a few of them whenever the sketch's counters collided."""
    driver = MemoryDriver(eviction_policy="tinylfu", max_size=100)
    hot = [f"hot{i}" for i in range(50)]
    for key in hot:
        driver.set(key, b"v")
    policy = driver._admission
    assert policy is not None
    assert len(policy.window) == 1  # the window's share of 100 entries
    for _ in range(4):
        for key in hot:
            assert driver.get(key) is not MISSING
    driver.set("scan0", b"s")  # the next write applies the buffered reads
    assert len(policy.protected) >= 49
    for i in range(1, 1000):
        driver.set(f"scan{i}", b"s")
    assert sum(driver.get(key) is not MISSING for key in hot) >= 49


def test_a_byte_bound_alone_still_admits_by_frequency() -> None:
    driver: Any = MemoryDriver(eviction_policy="tinylfu", max_size=0, max_memory_bytes=100 * 40)
    hot = [f"hot{i:02}" for i in range(40)]
    for _ in range(10):
        for key in hot:
            if driver.get(key) is MISSING:
                driver.set(key, b"v" * 30)
    for i in range(2000):
        driver.set(f"scan{i:04}", b"s" * 30)
        assert driver.memory_usage_bytes <= 100 * 40
    assert sum(driver.get(key) is not MISSING for key in hot) >= 36
    assert driver.evicted_due_to_memory > 0


def test_hits_are_buffered_and_applied_at_the_next_write() -> None:
    driver: Any = MemoryDriver(eviction_policy="tinylfu", max_size=10)
    driver.set("a", b"1")
    for _ in range(READ_BUFFER + 10):
        driver.get("a")
    assert len(driver._admission.reads) == READ_BUFFER  # bounded: the oldest hits are dropped
    before = driver._admission.sketch.frequency("a")
    driver.set("b", b"2")
    assert not driver._admission.reads
    assert driver._admission.sketch.frequency("a") > before



def test_a_pass_of_hits_over_a_thousand_residents_is_counted_for_each() -> None:
    """Every hit of a pass over the residents between two writes reaches the sketch. With a buffer of 256 the first
    744 of these hits were dropped, so in a loop the residents' counts faded while every miss was counted."""
    driver: Any = MemoryDriver(eviction_policy="tinylfu", max_size=2000)
    keys = [f"r{i}" for i in range(1000)]
    for key in keys:
        driver.set(key, b"v")
    for key in keys:
        assert driver.get(key) is not MISSING
    driver.set("next", b"v")  # applies the buffered hits
    sketch = driver._admission.sketch
    assert sum(sketch.frequency(key) >= 2 for key in keys) == len(keys)


class _ExactCounts:
    """A sketch without collisions (a dict), aged like :class:`FrequencySketch`: the policy on counts alone."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.counts: dict[str, int] = {}
        self.sample = 10 * self.capacity
        self.added = 0

    def frequency(self, key: str) -> int:
        return self.counts.get(key, 0)

    def increment(self, key: str) -> None:
        self.counts[key] = min(15, self.counts.get(key, 0) + 1)
        self.added += 1
        if self.added >= self.sample:
            self.counts = {k: n >> 1 for k, n in self.counts.items() if n > 1}
            self.added //= 2


def test_the_loop_keeps_its_resident_half_on_exact_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop over 6,000 keys through 3,000 entries, with a collision-free sketch: the residents' 3,000 hits in a row
    must all be counted for them to keep winning their contests (at most 45 % of reads can hit: the first pass
    misses). With hits sampled by a 256-read buffer, 40.9 % hit: the 44.5 % of the bench's loop row relied on
    sketch collisions favouring the residents."""
    import cachekit.drivers._tinylfu as tinylfu

    monkeypatch.setattr(tinylfu, "FrequencySketch", _ExactCounts)
    ratio = _loop_hit_ratio(MemoryDriver(eviction_policy="tinylfu", max_size=3000), 6000, 60_000)
    assert ratio >= 0.44, ratio


def test_a_scan_of_one_off_keys_leaves_few_unseen_keys_looking_seen() -> None:
    """16 counters per entry (Caffeine's density): after 4 x capacity one-off keys (a scan inside one aging period)
    about 15 % of never-seen keys have a non-zero estimate, not 53 % with 8, so a cold candidate rarely ties or
    beats a resident by collision."""
    sketch = FrequencySketch(1000)
    for i in range(4000):
        sketch.increment(f"scan{i}")
    looking_seen = sum(sketch.frequency(f"unseen{i}") > 0 for i in range(2000)) / 2000
    assert looking_seen < 0.25, looking_seen

def test_a_probation_hit_is_promoted_and_protected_is_bounded() -> None:
    policy = TinyLFU(100)
    for i in range(100):
        policy.added(f"k{i}")
    policy.added("new")
    policy.victim()  # fills main from the window: probation holds the older keys
    assert len(policy.probation) > 90
    for i in range(99):
        if f"k{i}" in policy.probation:
            policy.accessed(f"k{i}")
    assert len(policy.protected) <= (100 - 1) * 4 // 5
    assert len(policy) == 100


def test_the_sketch_counts_saturates_and_ages() -> None:
    sketch = FrequencySketch(64)
    assert sketch.frequency("a") == 0
    for n in range(1, 20):
        sketch.increment("a")
        assert sketch.frequency("a") == min(n, 15)
    for i in range(sketch.sample):  # fill the sample: every counter is halved once
        sketch.increment(f"other{i}")
    assert sketch.frequency("a") <= 8
    assert sketch.added < sketch.sample


def test_memory_tier_takes_the_policy(tmp_path: Any) -> None:
    cache = Cache(
        drivers=[
            {"driver": "memory", "config": {"eviction_policy": "tinylfu", "max_size": 5}},
            {"driver": "filesystem", "config": {"directory": str(tmp_path)}},
        ],
        namespace="tlfu-tier",
    )
    for i in range(20):
        cache.set(f"k{i}", {"i": i})
        assert cache.get(f"k{i}") == {"i": i}
    first: Any = cache.driver.tiers[0].driver  # type: ignore[attr-defined]
    assert first.stats()["eviction_policy"] == "tinylfu"
    assert len(first._data) == 5
    assert all(cache.get(f"k{i}") == {"i": i} for i in range(20))  # the lower tier still has them


@pytest.mark.parametrize("store", ["bytes", "objects"])
def test_both_stores_and_the_reader_note_hits(store: str) -> None:
    cache = Cache(driver="memory", namespace="tlfu-store", config={"eviction_policy": "tinylfu", "store": store})
    cache.set("a", {"x": 1})
    assert cache.get("a") == {"x": 1}
    driver: Any = cache.driver
    assert list(driver._admission.reads) == [next(iter(driver._data))]


def _loop_hit_ratio(driver: MemoryDriver, span: int, reads: int) -> float:
    """Hits per read of ``reads`` reads looping over ``span`` keys, each miss written back."""
    hits = 0
    for i in range(reads):
        key = f"l{i % span}"
        if driver.get(key) is MISSING:
            driver.set(key, b"v")
        else:
            hits += 1
    return hits / reads
