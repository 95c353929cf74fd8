"""The memory driver: eviction order, byte and entry limits, objects mode, memory stats."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachekit import MISSING, Cache
from cachekit.drivers import memory
from cachekit.drivers.memory import MemoryDriver, available_memory_bytes
from cachekit.errors import ConfigurationError
from tests.conftest import FakeClock

KEYS = st.sampled_from([f"k{i}" for i in range(12)])
BLOBS = st.binary(min_size=0, max_size=300)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, BLOBS),
        st.tuples(st.just("get"), KEYS, st.just(b"")),
        st.tuples(st.just("delete"), KEYS, st.just(b"")),
    ),
    max_size=120,
)


class ReferenceModel:
    """The simplest correct LRU/FIFO cache bounded by entries and bytes, to compare the driver against."""

    def __init__(self, policy: str, max_size: int, max_bytes: int | None) -> None:
        self.policy, self.max_size, self.max_bytes = policy, max_size, max_bytes
        self.data: OrderedDict[str, bytes] = OrderedDict()

    @staticmethod
    def cost(key: str, blob: bytes) -> int:
        return len(blob) + len(key.encode())

    def used(self) -> int:
        return sum(self.cost(k, v) for k, v in self.data.items())

    def set(self, key: str, blob: bytes) -> None:
        self.data.pop(key, None)
        if self.max_bytes is not None and self.cost(key, blob) > self.max_bytes:
            return
        if self.max_size and len(self.data) >= self.max_size:
            self.data.popitem(last=False)
        while self.max_bytes is not None and self.data and self.used() + self.cost(key, blob) > self.max_bytes:
            self.data.popitem(last=False)
        self.data[key] = blob

    def get(self, key: str) -> bytes | None:
        if key in self.data and self.policy == "lru":
            self.data.move_to_end(key)
        return self.data.get(key)


@pytest.mark.parametrize("policy", ["lru", "fifo"])
@settings(max_examples=150, deadline=None)
@given(ops=OPS, max_size=st.integers(0, 8), max_bytes=st.one_of(st.none(), st.integers(1, 900)))
def test_driver_matches_reference_model_and_never_exceeds_its_byte_limit(
    policy: str, ops: list[tuple[str, str, bytes]], max_size: int, max_bytes: int | None
) -> None:
    driver = MemoryDriver(eviction_policy=policy, max_size=max_size, max_memory_bytes=max_bytes)
    model = ReferenceModel(policy, max_size, max_bytes)
    for op, key, blob in ops:
        if op == "set":
            driver.set(key, blob)
            model.set(key, blob)
        elif op == "get":
            got = driver.get(key)
            assert (None if got is MISSING else got) == model.get(key)
        else:
            assert driver.delete(key) == (model.data.pop(key, None) is not None)
        assert driver.keys() == list(model.data), "eviction order differs from the reference model"
        assert driver.memory_usage_bytes == model.used()
        if max_bytes is not None:
            assert driver.memory_usage_bytes <= max_bytes


def test_lru_keeps_what_was_read_and_fifo_does_not() -> None:
    for policy, survivor in (("lru", "a"), ("fifo", "b")):
        driver = MemoryDriver(eviction_policy=policy, max_size=2)
        driver.set("a", b"1")
        driver.set("b", b"2")
        driver.get("a")
        driver.set("c", b"3")
        assert sorted(driver.keys()) == sorted([survivor, "c"]), policy
        assert driver.evicted_due_to_size == 1


def test_item_larger_than_the_cap_is_refused_counted_and_replaces_nothing() -> None:
    driver = MemoryDriver(max_memory_bytes=100)
    driver.set("k", b"small")
    driver.set("k", b"x" * 200)
    assert driver.get("k") is MISSING, "the old value must not survive a refused overwrite"
    assert driver.get_memory_stats()["evicted_due_to_memory"] == 1
    assert driver.memory_usage_bytes == 0


def test_byte_limit_evicts_oldest_first_and_counts_memory_evictions() -> None:
    driver = MemoryDriver(max_memory_bytes=30, max_size=0)
    for key in ("a", "b", "c"):
        driver.set(key, b"x" * 9)  # 10 bytes each with the key
    driver.set("d", b"x" * 9)
    assert driver.keys() == ["b", "c", "d"]
    stats = driver.get_memory_stats()
    assert stats["evicted_due_to_memory"] == 1
    assert stats["memory_usage"] == {"current": 30, "max": 30}
    assert stats["memory_usage_percent"] == 100.0


def test_ttl_uses_the_injected_clock(clock: FakeClock) -> None:
    driver = MemoryDriver(clock=clock)
    driver.set("k", b"v", ttl=10)
    clock.advance(9.9)
    assert driver.get("k") == b"v"
    clock.advance(0.2)
    assert driver.get("k") is MISSING
    assert driver.stats()["expirations"] == 1
    assert driver.memory_usage_bytes == 0


def test_objects_mode_returns_the_same_live_object() -> None:
    cache = Cache(driver="memory", config={"store": "objects"})
    value = {"a": [1, 2]}
    cache.set("k", value)
    assert cache.get("k") is value  # the documented trade-off: callers share the object
    assert cache.codec is None


def test_max_memory_percent_uses_the_lower_of_host_and_cgroup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    limit = tmp_path / "memory.max"
    limit.write_text(str(512 << 20))
    monkeypatch.setattr(memory, "_CGROUP_LIMIT_FILES", (limit,))
    total, source = available_memory_bytes()
    assert (total, source) == (512 << 20, "cgroup")
    driver = MemoryDriver(max_memory_percent=0.5)
    stats = driver.get_memory_stats()
    assert stats["max_memory_bytes"] == 256 << 20
    assert stats["max_memory_percent"] == 0.5
    assert stats["system_memory"]["source"] == "cgroup"
    limit.write_text("max")
    assert available_memory_bytes()[1] == "host"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"max_memory_bytes": 10, "max_memory_percent": 0.1}, "not both"),
        ({"max_memory_percent": 0}, "(0, 1]"),
        ({"max_memory_percent": 1.5}, "(0, 1]"),
        ({"max_memory_percent": -0.1}, "(0, 1]"),
        ({"max_memory_bytes": 0}, "> 0"),
        ({"eviction_policy": "random"}, "eviction_policy"),
        ({"store": "pickles"}, "store"),
        ({"store": "objects", "max_memory_bytes": 10}, "max_size"),
        ({"max_size": -1}, "max_size"),
    ],
)
def test_bad_options_raise_configuration_error(options: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words.replace("(", r"\(").replace("]", r"\]")):
        MemoryDriver(**options)  # type: ignore[arg-type]


def test_memory_stats_through_the_cache_facade() -> None:
    cache = Cache(driver="memory", config={"max_memory_bytes": 1 << 20})
    cache.set("k", {"a": 1})
    stats = cache.driver.get_memory_stats()  # type: ignore[attr-defined]
    assert stats["memory_usage"]["current"] > 0
    assert stats["system_memory"]["total"] > 0
    assert cache.stats().memory_usage_bytes == stats["current_memory_bytes"]


def test_an_overwrite_never_makes_a_concurrent_read_miss() -> None:
    """set() of an existing key replaces the entry in place: a lock-free reader sees the old or the new value."""
    import threading
    import time as _time

    driver = MemoryDriver(max_size=100)
    driver.set("k", b"v0")
    stop = threading.Event()
    misses: list[int] = []

    def read() -> None:
        found_missing = 0
        for _ in range(200_000):
            if stop.is_set():
                break
            if driver.get("k") is MISSING:
                found_missing += 1
        misses.append(found_missing)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    deadline = _time.monotonic() + 1.0
    writes = 0
    while _time.monotonic() < deadline and writes < 50_000:
        writes += 1
        driver.set("k", b"v%d" % writes)
    stop.set()
    for reader in readers:
        reader.join(timeout=10)
    assert writes > 100
    assert misses == [0, 0]
