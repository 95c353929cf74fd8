"""Bytes-mode hits served as copies of a value decoded once (``cachekit.codecs._copies``, ``_decoded_copies``).

Whatever the shortcut, a hit must be what a fresh decode of the stored blob is: equal with the same types all the
way down, and its own object, so that no caller's mutation reaches a later hit; and a new write is served at once.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import types
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachekit import Cache, cached
from cachekit.codecs._copies import MAX_NODES, copier_for
from cachekit.errors import ConfigurationError, InsecureSerializerWarning
from tests.conftest import same_value

# -- values and how to compare them ---------------------------------------------------------------------------

HASHABLE_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=8), st.binary(max_size=8),
    st.floats(allow_nan=False), st.decimals(allow_nan=False, places=3), st.uuids(),
    st.datetimes(timezones=st.sampled_from([None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=-5))])),
)  # fmt: skip
LEAVES = HASHABLE_LEAVES


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children) | st.tuples(children),
        st.dictionaries(st.text(max_size=4) | st.integers(0, 9), children, max_size=4),
        st.sets(st.integers(0, 50) | st.text(max_size=3), max_size=4),
        st.frozensets(st.integers(0, 50), max_size=3),
    )


VALUES = st.recursive(LEAVES, _containers, max_leaves=20)


def mutable_parts(value: Any) -> list[Any]:
    """Every dict, list and set inside ``value`` (tuples searched too), outermost first."""
    found: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (dict, list, set)):
            found.append(item)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return found


def vandalize(value: Any) -> None:
    """Change every mutable container inside ``value``, at every depth (lists inside tuples too)."""
    for part in mutable_parts(value):
        if isinstance(part, dict):
            part["__vandal__"] = ["x"]
        elif isinstance(part, list):
            part.append("__vandal__")
            if len(part) > 1:
                part[0] = "__vandal__"
        else:
            part.add("__vandal__")


def blob_of(cache: Cache, key: str) -> bytes:
    return cache.driver._data[cache._full_key(key)][0]  # type: ignore[attr-defined, no-any-return]


def fresh_decode(cache: Cache, key: str) -> Any:
    assert cache.codec is not None
    return cache.codec.decode(blob_of(cache, key))


# -- every hit: equal to a fresh decode, and its own ------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(value=VALUES)
def test_every_hit_equals_a_fresh_decode_and_shares_no_container(value: Any) -> None:
    cache = Cache(driver="memory", namespace="dc")
    assert cache.set("k", value)
    hits = [cache.get("k") for _ in range(4)]
    reference = fresh_decode(cache, "k")
    for hit in hits:
        assert same_value(hit, reference), (hit, reference)
    owned = [{id(part) for part in mutable_parts(hit)} for hit in hits]
    for i in range(len(hits)):
        for j in range(i + 1, len(hits)):
            assert not owned[i] & owned[j], "two hits share a mutable container"
    assert cache.hits == 4


@settings(max_examples=120, deadline=None)
@given(value=VALUES)
def test_a_caller_mutating_its_hit_never_changes_later_hits(value: Any) -> None:
    cache = Cache(driver="memory", namespace="dc")
    cache.set("k", value)
    reference = fresh_decode(cache, "k")
    for _ in range(3):
        hit = cache.get("k")
        assert same_value(hit, reference)
        vandalize(hit)
    assert same_value(cache.get("k"), reference)


def test_nested_lists_in_tuples_and_dicts_are_copied() -> None:
    cache = Cache(driver="memory", namespace="dc")
    value = {"rows": [{"id": 1, "tags": ["a"]}], "pair": (1, [2, [3]]), "s": {1, 2}, "fs": frozenset({1})}
    cache.set("k", value)
    first = cache.get("k")
    first["rows"][0]["tags"].append("b")
    first["pair"][1][1].append(4)
    first["s"].add(3)
    first["rows"].append(None)
    assert cache.get("k") == value
    assert cache.get("k") == value  # also the hit after a kept-value hit


@pytest.mark.parametrize("call", ["decorated", "get"])
def test_copies_through_cached_methods_and_cache_get(call: str) -> None:
    class Repo:
        name = "things"

        def __init__(self) -> None:
            self.cache = Cache(driver="memory", namespace="dc-m")
            self.loads = 0

        @cached(action="get")
        def get(self, id: str) -> dict[str, Any]:
            self.loads += 1
            return {"id": id, "items": [1, 2], "when": dt.datetime(2024, 1, 1), "d": Decimal("1.5")}

    repo = Repo()
    expected = repo.get("x")
    key = repo.get.cache_key("x")
    read: Callable[[], Any] = (lambda: repo.get("x")) if call == "decorated" else (lambda: repo.cache.get(key))
    for _ in range(3):
        hit = read()
        assert same_value(hit, expected)
        hit["items"].append(3)
        hit["id"] = "changed"
    assert repo.loads == 1
    assert same_value(read(), {"id": "x", "items": [1, 2], "when": dt.datetime(2024, 1, 1), "d": Decimal("1.5")})


# -- a new blob is served, never the old value -----------------------------------------------------------------


def test_a_new_write_is_served_at_once(clock: Any) -> None:
    cache = Cache(driver="memory", namespace="dc", clock=clock)
    cache.set("k", {"v": 1})
    assert cache.get("k") == {"v": 1}
    assert cache.get("k") == {"v": 1}  # now served from the kept value
    cache.set("k", {"v": 2})
    assert cache.get("k") == {"v": 2}
    cache.set("k", {"v": 2})  # an equal value: a new blob all the same
    assert cache.get("k") == {"v": 2}
    cache.delete("k")
    assert cache.get("k") is None
    cache.set("k", [3], ttl=1)
    assert cache.get("k") == [3]
    assert cache.get("k") == [3]
    clock.advance(1)
    assert cache.get("k") is None  # expired by the driver's deadline, though a decoded copy was kept
    cache.driver.set(cache._full_key("k"), b"corrupt", None)
    assert cache.get("k") is None
    assert cache.errors == 1


def test_an_evicted_and_rewritten_key_is_served_its_new_value() -> None:
    cache = Cache(driver="memory", namespace="dc", config={"max_size": 1})
    cache.set("a", ["a1"])
    assert cache.get("a") == ["a1"]
    assert cache.get("a") == ["a1"]
    cache.set("b", ["b"])  # evicts a
    assert cache.get("a") is None
    cache.set("a", ["a2"])
    assert cache.get("a") == ["a2"]


def test_concurrent_writers_and_readers_never_read_stale_after_a_write_returned() -> None:
    cache = Cache(driver="memory", namespace="dc-threads", config={"max_size": 0})
    keys = [f"k{i}" for i in range(4)]
    committed = dict.fromkeys(keys, 0)  # the newest version whose set() has returned
    lock = threading.Lock()
    stale: list[tuple[str, int, int]] = []
    reads = [0] * 4  # hits per reader thread
    misses = [0] * 4
    deadline = time.monotonic() + 2.0
    for key in keys:
        cache.set(key, {"v": 0, "pad": [key] * 5})

    writing = threading.Event()
    writing.set()

    def writer(key: str) -> None:
        for version in range(1, 20_000):
            if time.monotonic() > deadline:
                break
            cache.set(key, {"v": version, "pad": [key] * 5})
            with lock:
                committed[key] = version
        writing.clear()

    def reader(offset: int) -> None:
        for n in range(200_000):
            if not writing.is_set() or time.monotonic() > deadline:
                return
            key = keys[(n + offset) % len(keys)]
            with lock:
                required = committed[key]
            value = cache.get(key)
            if value is None:  # MemoryDriver.set removes, then inserts: a read in between misses (not stale)
                misses[offset] += 1
                continue
            got = value["v"]
            value["pad"].append("mutated")  # must never reach another reader
            if got < required or len(value["pad"]) != 6:
                stale.append((key, got, required))
            reads[offset] += 1

    threads = [threading.Thread(target=writer, args=(key,)) for key in keys[:2]]
    threads += [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert stale == [], stale[:10]
    assert sum(reads) > 1000
    assert sum(misses) < sum(reads)
    assert cache.hits > 0  # the counters themselves are not atomic across threads: no exact total


# -- the budget: decoded_cache_bytes ---------------------------------------------------------------------------


class CountingJson:
    """A json serializer pair that counts its decodes: how many hits were decoded rather than copied."""

    def __init__(self) -> None:
        self.loads = 0

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def decode(self, data: bytes) -> Any:
        self.loads += 1
        return json.loads(data)


def counting_cache(**config: Any) -> tuple[Cache, CountingJson]:
    pair = CountingJson()
    options = {"serializer": pair.dumps, "deserializer": pair.decode, **config}
    return Cache(driver="memory", namespace="dc-b", config=options), pair


def test_by_default_a_blob_is_decoded_at_its_first_two_hits_only() -> None:
    """The first hit decodes and keeps nothing (issue 22: most entries are hit once), the second decodes and
    keeps the value, every later hit copies it."""
    cache, pair = counting_cache()
    cache.set("k", {"a": [1, 2]})
    for _ in range(5):
        assert cache.get("k") == {"a": [1, 2]}
    assert pair.loads == 2
    cache.set("k", {"a": [3]})
    for _ in range(5):
        assert cache.get("k") == {"a": [3]}
    assert pair.loads == 4


def test_zero_decodes_every_hit() -> None:
    cache, pair = counting_cache(decoded_cache_bytes=0)
    cache.set("k", {"a": [1, 2]})
    for _ in range(5):
        hit = cache.get("k")
        assert hit == {"a": [1, 2]}
        hit["a"].append(9)
    assert pair.loads == 5


def test_a_value_over_an_eighth_of_the_budget_is_decoded_every_hit() -> None:
    cache, pair = counting_cache(decoded_cache_bytes=8000)
    cache.set("small", ["x" * 800])  # a list (72 B) and a str (849 B): under 1000 B
    cache.set("big", ["x" * 1000])  # over budget / 8
    for _ in range(4):
        assert cache.get("small") == ["x" * 800]
        assert cache.get("big") == ["x" * 1000]
    assert pair.loads == 2 + 4  # "small": its first two hits (the second keeps it); "big": every hit
    assert 800 < cache.driver.kept_bytes < 1000  # type: ignore[attr-defined]


def test_a_full_budget_keeps_nothing_more_until_an_entry_goes() -> None:
    cache, pair = counting_cache(decoded_cache_bytes=8000)
    keys = [f"k{i}" for i in range(8)]
    for key in keys:
        cache.set(key, [key, "x" * 800])
    for key in keys:
        cache.get(key)  # first hits: nothing kept
        cache.get(key)  # second hits: 8 values of ~ 930 bytes, all kept (< 8000)
    assert pair.loads == 16
    for key in keys:
        assert cache.get(key) == [key, "x" * 800]
    assert pair.loads == 16
    cache.set("k8", ["k8", "x" * 800])
    for _ in range(3):
        assert cache.get("k8") == ["k8", "x" * 800]  # would go over the budget: not kept, decoded every hit
    assert pair.loads == 19
    for key in keys:
        assert cache.get(key) == [key, "x" * 800]
    assert pair.loads == 19  # the others are still kept
    cache.delete("k0")  # its value goes with it
    assert cache.get("k8") == ["k8", "x" * 800]  # now fits: kept
    assert cache.get("k8") == ["k8", "x" * 800]
    assert pair.loads == 20


@pytest.mark.parametrize("bad", [-1, 1.5, True, "4MiB", None])
def test_decoded_cache_bytes_is_validated(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="decoded_cache_bytes"):
        Cache(driver="memory", config={"decoded_cache_bytes": bad})


def test_the_default_budget_is_four_mebibytes() -> None:
    assert Cache(driver="memory").driver.decoded_cache_bytes == 4 << 20  # type: ignore[attr-defined]


# -- values with no plan, and codecs that are not trusted -------------------------------------------------------


def test_a_msgpack_ext_type_has_no_plan_and_still_reads() -> None:
    value = [msgpack.ExtType(42, b"payload"), {"a": [1]}]
    assert copier_for(value) is None
    cache = Cache(driver="memory", namespace="dc")
    assert cache.set("k", value)
    for _ in range(3):
        hit = cache.get("k")
        assert hit == value
        assert type(hit[0]) is msgpack.ExtType
        hit[1]["a"].append(2)


class Point:
    def __init__(self, x: int, tags: list[str]) -> None:
        self.x, self.tags = x, tags

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.tags) == (other.x, other.tags)

    __hash__ = None  # type: ignore[assignment]


def test_objects_of_a_custom_serializer_pair_are_decoded_afresh() -> None:
    loads = [0]

    def dumps(p: Point) -> str:
        return json.dumps([p.x, p.tags])

    def decode(text: str) -> Point:
        loads[0] += 1
        x, tags = json.loads(text)
        return Point(x, tags)

    cache = Cache(driver="memory", namespace="dc", config={"serializer": dumps, "deserializer": decode})
    cache.set("k", Point(1, ["a"]))
    for _ in range(3):
        hit = cache.get("k")
        assert hit == Point(1, ["a"])
        hit.tags.append("b")
        hit.x = 99
    assert loads[0] == 3


def test_too_many_nodes_or_too_deep_gets_no_plan_and_still_reads() -> None:
    wide = [[i] for i in range(MAX_NODES)]
    deep: Any = [0]
    for _ in range(40):
        deep = [deep]
    cache = Cache(driver="memory", namespace="dc")
    for value in (wide, deep):
        assert copier_for(value) is None
        cache.set("k", value)
        first = cache.get("k")
        first.append("x")
        assert cache.get("k") == value


def test_a_signed_namespace_gets_no_copies_and_stays_correct() -> None:
    pair = CountingJson()
    config = {"signing_key": b"0123456789abcdef-key", "serializer": pair.dumps, "deserializer": pair.decode}
    cache = Cache(driver="memory", namespace="dc-signed", config=config)
    assert cache._read.__module__ == "cachekit.drivers.memory"
    assert cache.codec is not None
    assert cache.codec.signed
    cache.set("k", {"a": [1]})
    for _ in range(3):
        hit = cache.get("k")
        assert hit == {"a": [1]}
        hit["a"].append(2)
    assert pair.loads == 3  # not trusted: every hit verified and decoded
    signed = Cache(driver="memory", namespace="dc-signed", config={"signing_key": b"0123456789abcdef-key"})
    value = {"when": dt.datetime(2024, 5, 1), "ids": [uuid.UUID(int=7)], "t": (1, [2])}
    signed.set("k", value)
    for _ in range(3):
        hit = signed.get("k")
        assert same_value(hit, value)
        hit["t"][1].append(3)
    blob = bytearray(blob_of(signed, "k"))
    blob[-1] ^= 1
    signed.driver.set(signed._full_key("k"), bytes(blob), None)
    assert signed.get("k") is None  # a forged entry is refused, copy or no copy
    assert signed.errors == 1


def test_shared_references_inside_a_pickled_value_stay_shared() -> None:
    """A fresh decode of a pickle keeps the aliasing the value had; a hit must too (or mutate alike)."""
    with pytest.warns(InsecureSerializerWarning):
        cache = Cache(driver="memory", namespace="dc-pickle", config={"serializer": "pickle"})
    inner = [1]
    cache.set("k", {"a": inner, "b": inner})
    reference = fresh_decode(cache, "k")
    assert reference["a"] is reference["b"]
    for _ in range(3):
        hit = cache.get("k")
        assert hit["a"] is hit["b"]
        hit["a"].append(2)
    assert cache.get("k") == {"a": [1], "b": [1]}


@settings(max_examples=60, deadline=None)
@given(value=VALUES)
def test_a_plan_copies_exactly_its_value(value: Any) -> None:
    copier = copier_for(value)
    if copier is None:
        return
    copy = copier(value)
    assert same_value(copy, value)
    assert not {id(p) for p in mutable_parts(copy)} & {id(p) for p in mutable_parts(value)}


def test_a_value_holding_one_container_twice_gets_no_plan() -> None:
    inner: list[int] = [1]
    assert copier_for([inner, inner]) is None
    assert copier_for({"a": (inner,), "b": inner}) is None
    assert copier_for([[1], [1]]) is not None  # equal is not the same object
    assert copier_for([(), (), "s", "s"]) is not None  # shared immutables are fine


def _tiered(tmp_path: Any, clock: Any, **memory: Any) -> Cache:
    return Cache(
        namespace="tiered-copies",
        ttl=60,
        clock=clock,
        drivers=[{"driver": "memory", "ttl": 60, "config": memory},
                 {"driver": "filesystem", "config": {"directory": str(tmp_path / "l2")}}],
    )


def test_memory_tier_hits_are_copies_that_never_leak_a_mutation(tmp_path: Any) -> None:
    from tests.conftest import FakeClock

    cache = _tiered(tmp_path, FakeClock())
    cache.set("k", {"a": [1, 2], "b": {"c": "d"}})
    first, second = cache.get("k"), cache.get("k")
    assert first == second == {"a": [1, 2], "b": {"c": "d"}}
    assert first is not second
    assert first["a"] is not second["a"]
    assert first["b"] is not second["b"]
    first["a"].append(3)
    first["b"]["c"] = "changed"
    assert cache.get("k") == {"a": [1, 2], "b": {"c": "d"}}
    cache.set("k", {"a": [9]})
    assert cache.get("k") == {"a": [9]}  # a new blob: never the old kept value


def test_memory_tier_copies_still_honour_the_envelope_deadline(tmp_path: Any) -> None:
    from tests.conftest import FakeClock

    clock = FakeClock()
    cache = _tiered(tmp_path, clock)
    cache.set("k", {"v": 1}, ttl=5)
    assert cache.get("k") == cache.get("k") == {"v": 1}  # the second is served from the kept value
    clock.advance(6)
    assert cache.get("k") is None


def test_memory_tier_copies_can_be_turned_off(tmp_path: Any) -> None:
    from tests.conftest import FakeClock

    cache = _tiered(tmp_path, FakeClock(), decoded_cache_bytes=0)
    cache.set("k", [1])
    assert cache.get("k") == cache.get("k") == [1]
    assert Cache(namespace="plain-redisless")._read.__module__ == "cachekit.drivers.memory"  # its own reader


# -- kept values live in the driver's entries: bounded, accounted, gone with their entry -------------------------


def _record(i: int) -> dict[str, Any]:
    return {"id": f"u{i}", "name": "Ann", "age": 41, "active": True, "score": 3.5, "tags": ["a", "b"],
            "region": "eu", "meta": {"k": 1}, "nothing": None, "email": f"ann{i}@example.com"}  # fmt: skip


def test_memory_under_max_size_stays_bounded_whatever_the_number_of_distinct_keys() -> None:
    """tracemalloc on from before the warm-up: what 3,000 more distinct keys add to a max_size=200 cache."""
    import gc
    import tracemalloc

    cache = Cache(driver="memory", namespace="dc-bound", config={"max_size": 200})
    tracemalloc.start()
    try:
        for i in range(1000):
            cache.set(f"k{i}", _record(i))
            assert cache.get(f"k{i}") == cache.get(f"k{i}") == _record(i)  # the second hit keeps the value
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000, 4000):
            cache.set(f"k{i}", _record(i))
            cache.get(f"k{i}")
            cache.get(f"k{i}")
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 256 << 10, grown  # the kept values of 3,000 records would be ~ 2 MB
    driver = cache.driver
    assert len(driver._data) == 200  # type: ignore[attr-defined]
    assert 200 * 400 < driver.kept_bytes < 200 * 1200  # type: ignore[attr-defined]


def test_a_capped_driver_of_entries_hit_once_holds_no_decoded_values() -> None:
    """Issue 22: a first hit keeps nothing, so a capped driver that sees one-off keys (each written, then hit
    once) holds blobs and keys alone: about 370 B per live entry of the 10-field record, where keeping a decoded
    copy at the first hit made it about 975. tracemalloc starts after the warm-up, as ``memory_bound.py`` does,
    so every live entry counts as growth; the bound is per entry of ``max_size``."""
    import gc
    import tracemalloc

    max_size = 200
    cache = Cache(driver="memory", namespace="dc-once", config={"max_size": max_size})
    driver: Any = cache.driver

    def write_and_hit_once(i: int) -> None:
        cache.set(f"user:{i}", _record(i))
        assert cache.get(f"user:{i}") == _record(i)

    for i in range(1000):
        write_and_hit_once(i)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000, 6000):
            write_and_hit_once(i)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < max_size * 512, f"{grown / max_size:.0f} B per entry of max_size"
    assert len(driver._data) == max_size
    assert driver.kept_bytes == 0
    assert driver.memory_usage_bytes == sum(len(entry[0]) + len(key) for key, entry in driver._data.items())


def test_a_first_hit_hands_over_its_decoding_and_the_second_keeps_one() -> None:
    """The first hit's value is the decoding itself (the caller's own: nothing else holds it); the entry then
    says "hit once" by its length alone, and the second hit decodes again and keeps the value for later hits to
    copy. No caller's mutation reaches another hit."""
    cache = Cache(driver="memory", namespace="dc-second")
    driver: Any = cache.driver
    cache.set("k", _record(1))
    full = cache._full_key("k")
    blob_bytes = driver.memory_usage_bytes
    decodes = count_decodes(cache)
    first = cache.get("k")
    assert first == _record(1)
    assert (driver.kept_bytes, driver.memory_usage_bytes, len(driver._data[full])) == (0, blob_bytes, 4)
    vandalize(first)
    second = cache.get("k")
    assert second == _record(1)
    assert driver.kept_bytes > 400
    assert driver.memory_usage_bytes == blob_bytes + driver.kept_bytes
    vandalize(second)
    for _ in range(3):
        hit = cache.get("k")
        assert hit == _record(1)
        vandalize(hit)
    assert decodes[0] == 2
    assert cache.hits == 5


def test_a_first_hit_never_marks_an_entry_written_since_its_lookup() -> None:
    """The "hit once" mark replaces the entry's tuple under the lock only while it is still the one stored: a
    hit that looked up the old entry before a write must not put the old blob back."""
    from cachekit.drivers.memory import first_hit

    cache = Cache(driver="memory", namespace="dc-race")
    driver: Any = cache.driver
    assert cache.codec is not None
    cache.set("k", {"v": 1})
    full = cache._full_key("k")
    stale = driver._data[full]
    cache.set("k", {"v": 2})  # a write between a hit's lookup and its mark
    assert first_hit(driver, full, stale, cache.codec.decode, None) == {"v": 1}  # what that hit read
    assert len(driver._data[full]) == 3  # the new entry: unmarked
    assert cache.get("k") == cache.get("k") == cache.get("k") == {"v": 2}
    assert driver.memory_usage_bytes == len(driver._data[full][0]) + len(full) + driver.kept_bytes


def test_kept_values_are_counted_and_dropped_with_their_entry(clock: Any) -> None:
    cache = Cache(driver="memory", namespace="dc-drop", clock=clock, config={"max_size": 3})
    driver: Any = cache.driver
    assert driver.kept_bytes == 0
    cache.set("a", _record(1), ttl=10)
    blob_bytes = driver.memory_usage_bytes
    assert cache.get("a") == _record(1)
    assert (driver.kept_bytes, driver.memory_usage_bytes) == (0, blob_bytes)  # a first hit keeps nothing
    assert cache.get("a") == _record(1)
    kept = driver.kept_bytes
    assert 400 < kept < 1200  # the record's dict, strings, list and inner dict, estimated when kept
    assert driver.memory_usage_bytes == blob_bytes + kept
    assert driver.stats()["decoded_bytes"] == kept

    cache.set("a", _record(2))  # overwrite: the old entry and its value are gone
    assert driver.kept_bytes == 0
    assert cache.get("a") == cache.get("a") == _record(2)
    assert driver.kept_bytes == kept
    cache.delete("a")  # delete
    assert driver.kept_bytes == 0
    assert driver.memory_usage_bytes == 0

    for key in "bcd":
        cache.set(key, _record(3), ttl=5)
        cache.get(key)
        cache.get(key)
    assert driver.kept_bytes == 3 * kept
    cache.set("e", _record(4))  # evicts b (LRU, max_size 3)
    assert driver.kept_bytes == 2 * kept
    clock.advance(6)
    assert cache.get("c") is None  # expired
    assert cache.get("d") is None
    assert driver.kept_bytes == 0
    cache.clear()
    assert driver.memory_usage_bytes == 0


def test_kept_values_count_in_max_memory_bytes_and_take_at_most_half() -> None:
    cache = Cache(driver="memory", namespace="dc-bytes", config={"max_memory_bytes": 20_000, "max_size": 0})
    driver: Any = cache.driver
    for i in range(200):
        cache.set(f"k{i}", _record(i))
        assert cache.get(f"k{i}") == _record(i)
        assert cache.get(f"k{i}") == _record(i)
        assert driver.memory_usage_bytes <= 20_000
        assert driver.kept_bytes <= 10_000
    assert driver.kept_bytes > 5_000
    assert driver.evicted_due_to_memory > 0


def test_concurrent_writers_and_readers_under_eviction_never_read_stale() -> None:
    """Writers bump versions while readers read and a third thread churns other keys (evictions, max_size 8)."""
    cache = Cache(driver="memory", namespace="dc-churn", config={"max_size": 8})
    keys = ["x", "y"]
    committed = dict.fromkeys(keys, 0)
    lock = threading.Lock()
    stale: list[tuple[str, int, int]] = []
    stop = threading.Event()
    hits = [0]

    def writer(key: str) -> None:
        # At least 3,000 versions, and on until the readers have had hits (a loaded machine may schedule them
        # late), bounded in time.
        deadline, version = time.monotonic() + 20, 0
        while version < 3000 or (hits[0] <= 200 and time.monotonic() < deadline):
            version += 1
            cache.set(key, {"v": version, "pad": [key]})
            with lock:
                committed[key] = version
        stop.set()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            cache.set(f"other{n % 50}", {"n": n})
            cache.get(f"other{n % 50}")
            n += 1

    def reader() -> None:
        while not stop.is_set():
            for key in keys:
                with lock:
                    required = committed[key]
                value = cache.get(key)
                if value is None:  # evicted by the churn: a miss, never stale
                    continue
                value["pad"].append("mutated")
                if value["v"] < required or len(value["pad"]) != 1 + 1:
                    stale.append((key, value["v"], required))
                hits[0] += 1

    threads = [threading.Thread(target=writer, args=(key,)) for key in keys]
    threads += [threading.Thread(target=churn), threading.Thread(target=reader), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert stale == [], stale[:10]
    assert hits[0] > 100
    driver: Any = cache.driver
    with driver._lock:
        expected = sum(e[4] for e in driver._data.values() if len(e) > 4)
        assert driver.kept_bytes == expected  # the accounting agrees with what the entries hold


def test_records_of_one_shape_share_one_plan() -> None:
    first, second = copier_for(_record(1)), copier_for(_record(2))
    assert first is not None
    assert first is second
    assert same_value(first(_record(3)), _record(3))


@pytest.mark.parametrize("containers", [0, 1, 2, 3, 4, 5])
def test_a_dict_copier_copies_every_container_whatever_their_number(containers: int) -> None:
    """Dicts with one to three containers to copy get an unrolled copier, more a loop: each copies them all."""
    value = {"id": 1, "name": "x", **{f"c{i}": [i, {"n": i}] for i in range(containers)}, "last": None}
    copier = copier_for(value)
    assert copier is not None
    for _ in range(2):
        copy = copier(value)
        assert same_value(copy, value)
        assert copy is not value
        assert not {id(part) for part in mutable_parts(copy)} & {id(part) for part in mutable_parts(value)}


def test_copiers_are_python_functions_that_run_in_the_readers_loop() -> None:
    """A hit calls its copier from Python code: a plain function runs in the caller's evaluation loop, where a
    ``functools.partial`` is a C call that enters a new one (about 600 instructions a hit, issue 22)."""
    for value in (_record(1), [[1], [2]], ([1], 2), {"a": {"b": [1]}}, {str(i): [i] for i in range(5)}):
        copier = copier_for(value)
        assert type(copier) is types.FunctionType, (value, copier)


def test_memory_tier_kept_values_live_in_the_tier_entries(tmp_path: Any) -> None:
    from tests.conftest import FakeClock

    cache = _tiered(tmp_path, FakeClock())
    tier: Any = cache.driver._tiers[0].driver  # type: ignore[attr-defined]
    cache.set("k", _record(1))
    assert cache.get("k") == _record(1)
    assert tier.kept_bytes == 0  # a first hit keeps nothing
    assert cache.get("k") == cache.get("k") == _record(1)
    assert tier.kept_bytes > 400
    cache.delete("k")
    assert tier.kept_bytes == 0
    assert cache.get("k") is None


def count_decodes(cache: Cache) -> list[int]:
    """Count the payload decodes of ``cache``'s codec (msgpack's, whichever of its two loads a blob takes)."""
    codec: Any = cache.codec
    calls = [0]

    def counted(loads: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        def load(data: bytes) -> Any:
            calls[0] += 1
            return loads(data)

        return load

    codec._loads, codec._loads_plain = counted(codec._loads), counted(codec._loads_plain)
    return calls


def test_aget_and_get_many_of_a_memory_tier_hit_copy_the_kept_value(tmp_path: Any) -> None:
    """``Cache.aget`` (``_aread``), a decorated ``async def`` read of a blocking tiered driver (``_aread``) and
    ``get_many`` serve a warm memory-tier hit from the value its entry keeps, as the sync reader does: no
    decode, and every caller its own copy."""
    import asyncio

    from tests.conftest import FakeClock

    cache = _tiered(tmp_path, FakeClock())
    assert cache.driver.blocking  # decorated async reads go through _aread
    value = {"id": 7, "tags": ["a", "b"], "pair": (1, [2]), "when": dt.datetime(2024, 1, 1), "d": Decimal("1.5")}
    cache.set("k", value)
    decodes = count_decodes(cache)
    assert same_value(cache.get("k"), value)  # the first hit decodes and keeps nothing
    assert same_value(cache.get("k"), value)  # the second decodes and keeps the value in the L1 entry
    assert decodes[0] == 2

    class Repo:
        name = "things"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get")
        async def get(self, id: str) -> dict[str, Any]:
            return dict(value, id=id)

    repo = Repo()

    async def reads() -> list[Any]:
        await repo.get("x")  # a miss: loaded, stored, decoded at its first two hits below
        return [await cache.aget("k"), await cache.aget("k"), await repo.get("x"), await repo.get("x"),
                await repo.get("x")]  # fmt: skip

    hits = asyncio.run(reads())
    assert decodes[0] == 4  # only the first two hits of "x" (the second keeps it): "k" and the third "x" copy
    hits += [cache.get_many(["k"])["k"], cache.get_many(["k", "absent", "k"])["k"]]
    assert decodes[0] == 4  # warm L1 hits: copies of the kept value, never a decode
    for hit in hits:
        assert same_value(hit, value if hit["id"] == 7 else dict(value, id="x"))
        hit["tags"].append("mutated")
        hit["pair"][1].append("mutated")
    assert same_value(cache.get("k"), value)
    assert same_value(asyncio.run(cache.aget("k")), value)
    assert same_value(cache.get_many(["k"])["k"], value)
    assert same_value(asyncio.run(repo.get("x")), dict(value, id="x"))
    assert decodes[0] == 4


def test_aget_and_get_many_of_a_plain_memory_hit_copy_the_kept_value() -> None:
    """A plain memory cache's ``aget`` and ``get_many`` serve the value its reader keeps (``MemoryDriver``'s
    ``blob_decoder``): they decoded every hit."""
    import asyncio

    cache = Cache(driver="memory", namespace="dc-plain", ttl=60)
    value = {"id": 7, "tags": ["a", "b"], "pair": (1, [2]), "when": dt.datetime(2024, 1, 1), "d": Decimal("1.5")}
    cache.set("k", value)
    cache.set("j", value)
    decodes = count_decodes(cache)
    assert same_value(cache.get("k"), value)  # the reader's first hit: decoded, nothing kept
    assert same_value(cache.get("k"), value)  # its second: decoded and kept
    assert decodes[0] == 2

    async def reads() -> list[Any]:
        return [await cache.aget("k"), await cache.aget("k"), await cache.aget("j"), await cache.aget("j"),
                await cache.aget("j")]  # fmt: skip

    hits = asyncio.run(reads())  # "j" is decoded at its first two agets (the second keeps it), the third copies
    hits += [cache.get_many(["k"])["k"], cache.get_many(["k", "absent", "j"])["j"], cache.get("j")]
    assert decodes[0] == 4
    for hit in hits:
        assert same_value(hit, value)
        hit["tags"].append("mutated")
        hit["pair"][1].append("mutated")
    assert same_value(cache.get("k"), value)
    assert same_value(asyncio.run(cache.aget("j")), value)
    cache.set("k", {"new": True})  # a write is served at once, by every path
    assert cache.get_many(["k"]) == {"k": {"new": True}}
    assert asyncio.run(cache.aget("k")) == {"new": True}


def test_holding_blobs_in_process_is_a_declared_capability_not_a_class_check() -> None:
    """``Driver.holds_blobs_in_process`` decides the trusted reads (no checksum, kept copies). A memory driver
    subclass that declares it gets them, one that does not keeps the checked path; a cache tested the driver's
    exact class (``type(driver) is MemoryDriver``)."""
    from cachekit.drivers.memory import MemoryDriver

    class Declared(MemoryDriver):
        holds_blobs_in_process = True

    class Undeclared(MemoryDriver):
        pass

    assert MemoryDriver.holds_blobs_in_process
    assert not Undeclared.holds_blobs_in_process
    for driver, trusted in ((MemoryDriver(), True), (Declared(), True), (Undeclared(), False)):
        cache = Cache(driver=driver, namespace="dc-capability")
        assert cache._trusted_blobs is trusted, type(driver).__name__
        cache.set("k", {"a": [1]})
        decodes = count_decodes(cache)
        hits = [cache.get("k"), cache.get("k"), asyncio_get(cache, "k"), cache.get_many(["k"])["k"]]
        assert all(hit == {"a": [1]} for hit in hits)
        assert decodes[0] == (2 if trusted else 4), type(driver).__name__  # trusted: the third and fourth copy
        tiered = Cache(drivers=[{"driver": driver}, {"driver": "memory"}], namespace="dc-capability-tiers")
        tiered.set("k", {"a": [1]})
        decodes = count_decodes(tiered)
        hits = [tiered.get("k"), tiered.get("k"), asyncio_get(tiered, "k"), tiered.get_many(["k"])["k"]]
        assert all(hit == {"a": [1]} for hit in hits)
        assert decodes[0] == (2 if trusted else 4), f"tier {type(driver).__name__}"


def asyncio_get(cache: Cache, key: str) -> Any:
    import asyncio

    return asyncio.run(cache.aget(key))
