"""The memory driver's fused reader (``MemoryDriver.reader``) against the generic body (``Driver.reader``).

Two namespaces are driven through the same operations with the same fake clock: one reads with the reader the
memory driver put on the instance, the other with the class's generic path. Every read must give the same value
(same types all the way down), and the two must end with the same counters, errors and LRU order.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import cachekit.metrics
from cachekit import MISSING, Cache, cached
from cachekit.codecs import Codec
from cachekit.drivers.base import Driver
from cachekit.drivers.memory import MemoryDriver
from tests.conftest import FakeClock, same_value

READER_MODULE = "cachekit.drivers.memory"


class BreakableClock(FakeClock):
    """A fake clock that raises while ``broken`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def __call__(self) -> float:
        if self.broken:
            raise OSError("the clock is gone")
        return self.now


def pair(clock: FakeClock, **config: Any) -> tuple[Cache, Cache]:
    """(a namespace reading with the memory reader, a twin reading with the generic body)."""
    fast = Cache(driver="memory", namespace="mr", clock=clock, config=dict(config))
    slow = Cache(driver="memory", namespace="mr", clock=clock, config=dict(config))
    assert fast._read.__module__ == READER_MODULE
    slow._read = slow._reader(Driver.reader)  # the generic body over MemoryDriver.get
    assert slow._read.__module__ == "cachekit.drivers.base"
    return fast, slow


def counters(cache: Cache) -> tuple[int, int, int, int]:
    driver = cache.driver
    assert isinstance(driver, MemoryDriver)
    return cache.hits, cache.misses, cache.errors, driver.expirations


KEYS = st.sampled_from(["a", "b", "c", "d"])
VALUES = st.one_of(
    st.integers(-5, 5),
    st.text(max_size=5),
    st.none(),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.sampled_from(["x", "y"]), st.tuples(st.booleans(), st.floats(allow_nan=False)), max_size=2),
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, VALUES, st.sampled_from([None, 1.0, 5.0])),
        st.tuples(st.just("read"), KEYS),
        st.tuples(st.just("read"), KEYS),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 1.0, 3.0])),
        st.tuples(st.just("delete"), KEYS),
        st.tuples(st.just("corrupt"), KEYS, st.sampled_from([b"garbage", b"", "bad-payload"])),
        st.tuples(st.just("clock"), st.booleans()),
    ),
    max_size=60,
)


def bad_payload() -> bytes:
    """An envelope with a good header whose payload is no msgpack (0xc1 is never used): a CorruptEntryError."""
    good = Codec(compression=None).encode(1, None)
    return good[:-5] + b"\xc1" + good[-4:]


def apply(op: tuple[Any, ...], cache: Cache) -> Any:
    kind = op[0]
    if kind == "set":
        return cache.set(op[1], op[2], ttl=op[3])
    if kind == "read":
        return cache._read(cache._full_key(op[1]))
    if kind == "delete":
        return cache.delete(op[1])
    if kind == "corrupt":
        blob = bad_payload() if op[2] == "bad-payload" else op[2]
        return cache.driver.set(cache._full_key(op[1]), blob, None)
    return None


@pytest.mark.parametrize("config", [{}, {"max_size": 3}, {"key_prefix": "pre:"}, {"eviction_policy": "fifo"},
                                    {"max_size": 2, "key_prefix": "p/", "decoded_cache_bytes": 0},
                                    {"store": "objects", "max_size": 3}])  # fmt: skip
@settings(max_examples=60, deadline=None)
@given(ops=OPS)
# Every branch of a hit, whatever hypothesis draws: a first, a second (keeps the value) and a third (a copy of it)
# in bytes mode, the entry itself in objects mode.
@example(ops=[("set", "a", [1], None), ("read", "a"), ("read", "a"), ("read", "a"), ("read", "b")])
def test_the_reader_reads_what_the_generic_path_reads(config: dict[str, Any], ops: list[tuple[Any, ...]]) -> None:
    clock = BreakableClock()
    fast, slow = pair(clock, **config)
    if config.get("store") == "objects":
        ops = [op for op in ops if op[0] != "corrupt"]  # objects mode stores anything: nothing is corrupt
    for op in ops:
        if op[0] == "advance":
            clock.advance(op[1])
            continue
        if op[0] == "clock":
            clock.broken = op[1]
            continue
        if op[0] == "set" and clock.broken:
            continue  # a write with no clock is not what this compares
        got, expected = apply(op, fast), apply(op, slow)
        assert (got is MISSING) == (expected is MISSING), op
        assert same_value(got, expected), (op, got, expected)
        assert counters(fast) == counters(slow), op
        assert list(fast.driver._data) == list(slow.driver._data), op  # type: ignore[attr-defined]
    clock.broken = False


def test_hits_misses_and_expiry_by_the_driver_clock(clock: FakeClock) -> None:
    cache = Cache(driver="memory", namespace="mr", clock=clock)
    key = cache._full_key("k")
    assert cache._read(key) is MISSING
    cache.set("k", {"a": [1]}, ttl=10)
    assert cache._read(key) == {"a": [1]}
    assert cache._read(key) == {"a": [1]}
    assert (cache.hits, cache.misses) == (2, 1)
    clock.advance(9.9)
    assert cache._read(key) == {"a": [1]}
    clock.advance(0.1)  # the deadline itself is expired
    assert cache._read(key) is MISSING
    assert (cache.hits, cache.misses) == (3, 2)
    assert cache.driver.expirations == 1  # type: ignore[attr-defined]
    assert key not in cache.driver._data  # type: ignore[attr-defined]
    assert cache.stats().hits == 3


def test_a_hit_moves_the_key_to_the_end_of_the_lru_and_saves_it_from_eviction() -> None:
    cache = Cache(driver="memory", namespace="mr", config={"max_size": 2})
    cache.set("old", 1)
    cache.set("new", 2)
    assert cache._read(cache._full_key("old")) == 1  # old is now the most recently used
    cache.set("third", 3)
    assert cache.get("old") == 1
    assert cache.get("new") is None
    fifo = Cache(driver="memory", namespace="mr", config={"max_size": 2, "eviction_policy": "fifo"})
    fifo.set("old", 1)
    fifo.set("new", 2)
    assert fifo._read(fifo._full_key("old")) == 1
    fifo.set("third", 3)
    assert fifo.get("old") is None


def test_key_prefix_is_applied_by_the_reader() -> None:
    driver = MemoryDriver(key_prefix="tenant1:")
    cache = Cache(driver=driver, namespace="mr")
    assert cache._read.__module__ == READER_MODULE
    cache.set("k", "v")
    assert list(driver._data) == ["tenant1:mr/k"]
    assert cache.get("k") == "v"
    other = Cache(driver=MemoryDriver(key_prefix="tenant2:"), namespace="mr")
    other.driver._data.update(driver._data)  # type: ignore[attr-defined]  # same stored key, wrong prefix
    assert other.get("k") is None
    assert (cache.hits, other.misses) == (1, 1)


def test_a_failing_clock_is_a_counted_error_and_a_miss_never_an_exception() -> None:
    clock = BreakableClock()
    cache = Cache(driver="memory", namespace="mr", clock=clock)
    cache.set("k", [1, 2], ttl=60)
    clock.broken = True
    assert cache.get("k", "default") == "default"
    assert cache.errors == 1
    clock.broken = False
    assert cache.get("k") == [1, 2]  # a clock failure drops nothing
    assert cache.hits == 1


@pytest.mark.parametrize("blob", [b"garbage", b"", b"\xce", "bad-payload"])
def test_a_corrupt_blob_counts_an_error_is_dropped_and_is_a_miss(blob: Any) -> None:
    cache = Cache(driver="memory", namespace="mr")
    full = cache._full_key("k")
    cache.driver.set(full, bad_payload() if blob == "bad-payload" else blob, 60)
    assert cache._read(full) is MISSING
    assert cache.errors == 1
    assert full not in cache.driver._data  # type: ignore[attr-defined]
    assert cache._read(full) is MISSING  # now simply absent: a plain miss, no second error
    assert (cache.errors, cache.misses) == (1, 1)
    cache.set("k", {"ok": True})
    assert cache.get("k") == {"ok": True}


def test_a_memory_driver_whose_get_is_overridden_reads_through_the_generic_body() -> None:
    class MyMemory(MemoryDriver):
        def get(self, key: str) -> Any:
            self.gets = getattr(self, "gets", 0) + 1
            return super().get(key)

    class SameMemory(MemoryDriver):
        pass

    mine = Cache(driver=MyMemory(), namespace="mr")
    assert mine._read.__module__ == "cachekit.drivers.base"
    mine.set("k", 1)
    assert mine.get("k") == 1
    assert mine.driver.gets == 1  # type: ignore[attr-defined]
    assert Cache(driver=SameMemory(), namespace="mr")._read.__module__ == READER_MODULE  # get as is: fused
    tiered = Cache(drivers=[{"driver": "memory"}, {"driver": "memory"}], namespace="mr")
    assert tiered._read.__module__ == READER_MODULE  # a plain memory first tier: the fused L1 reader
    overridden = Cache(drivers=[MyMemory(), {"driver": "memory"}], namespace="mr")
    assert overridden._read.__module__ == "cachekit.drivers.base"  # its L1 get overridden: the generic body
    assert Cache(driver="null", namespace="mr")._read.__module__ == "cachekit.drivers.base"


def test_the_reader_does_not_keep_its_cache_alive() -> None:
    cache = Cache(driver="memory", namespace="mr-gc")
    cache.set("k", 1)
    reader = cache._read
    ref = weakref.ref(cache)
    del cache
    gc.collect()
    assert ref() is None
    assert reader("mr-gc/k") == 1  # the driver is still there; nothing to report failures to is fine


# -- hooks come and go: the reader must come back -------------------------------------------------------------


class Users:
    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.loads = 0

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any]:
        self.loads += 1
        return {"id": id, "tags": [id]}


@pytest.fixture
def _metrics_off() -> Iterator[None]:
    cachekit.metrics.disable()
    yield
    cachekit.metrics.disable()
    cachekit.metrics.reset()


def _three_reads(cache: Cache, id: str) -> None:
    """A miss and a hit of ``id`` through a decorated method, and a miss of a key of one's own."""
    users = Users(cache)
    assert users.get(id) == {"id": id, "tags": [id]}
    assert users.get(id) == {"id": id, "tags": [id]}
    assert cache.get("nothing") is None
    assert users.loads == 1


def test_hit_listeners_replace_the_reader_and_unsubscribing_puts_it_back() -> None:
    cache = Cache(driver="memory", namespace="mr-events")
    _three_reads(cache, "u1")
    assert (cache.hits, cache.misses) == (1, 2)
    seen: list[str] = []
    handle = cache.on("hit", lambda event: seen.append(event.kind))
    assert cache._read.__module__ != READER_MODULE
    cache.reset_stats()
    _three_reads(cache, "u2")
    assert seen == ["hit"]
    assert (cache.hits, cache.misses) == (1, 2)
    handle.unsubscribe()
    assert cache._read.__module__ == READER_MODULE
    cache.reset_stats()
    users = Users(cache)
    users.get("u1")
    assert users.loads == 0  # the entry stored while hooked is served by the restored reader
    assert (cache.hits, cache.misses) == (1, 0)
    assert seen == ["hit"]


@pytest.mark.usefixtures("_metrics_off")
def test_metrics_replace_the_reader_and_disable_puts_it_back() -> None:
    prometheus_client = pytest.importorskip("prometheus_client")
    cache = Cache(driver="memory", namespace="mr-metrics")
    cachekit.metrics.enable_prometheus(prometheus_client.CollectorRegistry())
    assert cache._read.__module__ != READER_MODULE
    _three_reads(cache, "u1")
    assert (cache.hits, cache.misses) == (1, 2)
    cachekit.metrics.disable()
    assert cache._read.__module__ == READER_MODULE
    _three_reads(cache, "u2")
    assert (cache.hits, cache.misses) == (2, 4)
    subscription = cache.on("miss", lambda event: None)
    subscription.unsubscribe()
    assert cache._read.__module__ == READER_MODULE
    assert cache.get("nothing") is None
    assert cache.misses == 5
