"""The Cache namespace: key/value API, TTLs, policies, fail-open reads, invalidation safety, stats, config."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pytest

from cachekit import MISSING, Cache, Invalidation, cached, invalidates
from cachekit._types import Missing
from cachekit.drivers import Driver
from cachekit.drivers.memory import MemoryDriver
from cachekit.errors import (
    ConfigurationError,
    DriverNotFound,
    DriverUnavailable,
    UncacheableValueWarning,
)
from tests.conftest import FakeClock


class FlakyDriver(Driver):
    """A dict-backed driver whose operations fail on demand, as a backend that goes away and comes back."""

    name = "flaky"
    sharing = "process"
    blocking = False

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.failing: set[str] = set()
        self.calls: Counter[str] = Counter()

    def _call(self, operation: str) -> None:
        self.calls[operation] += 1
        if operation in self.failing:
            raise DriverUnavailable(f"{operation}: connection refused")

    def get(self, key: str) -> bytes | Missing:
        self._call("get")
        return self.data.get(key, MISSING)

    def get_many(self, keys: list[str]) -> list[bytes | Missing]:  # type: ignore[override]
        self._call("get")
        return [self.data.get(key, MISSING) for key in keys]

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        self._call("set")
        self.data[key] = blob

    def delete(self, key: str) -> bool:
        self._call("delete")
        return self.data.pop(key, None) is not None

    def clear(self, prefix: str = "") -> int:
        doomed = [k for k in self.data if k.startswith(prefix)]
        for k in doomed:
            del self.data[k]
        return len(doomed)

    def clear_many(self, prefixes: Iterable[str]) -> int:
        self._call("clear")
        return sum(self.clear(p) for p in prefixes if p)

    def keys(self, prefix: str = "") -> list[str]:
        self._call("keys")
        return [k for k in self.data if k.startswith(prefix)]


@pytest.fixture
def cache(clock: FakeClock) -> Cache:
    return Cache(namespace="ns", ttl=60, clock=clock)


# -- the key/value API ---------------------------------------------------------------------------------------------


def test_get_set_delete(cache: Cache) -> None:
    assert cache.set("k", {"a": 1}) is True
    assert cache.get("k") == {"a": 1}
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.get("k") is None


def test_get_returns_the_default_on_a_miss_but_a_cached_none_is_a_hit(cache: Cache) -> None:
    sentinel = object()
    assert cache.get("absent", sentinel) is sentinel
    assert cache.get("absent") is None
    cache.set("none", None)
    assert cache.get("none", sentinel) is None
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (1, 2)


def test_manual_keys_are_namespaced(cache: Cache) -> None:
    cache.set("k", 1)
    assert cache.driver.keys() == ["ns/k"]
    assert cache.keys() == ["ns/k"]
    assert cache.get("ns/k") == 1  # an already namespaced key is not prefixed twice


def test_clear_keys_and_size(cache: Cache) -> None:
    cache.set_many({"a/1": 1, "a/2": 2, "b/1": 3})
    assert sorted(cache.keys("a/")) == ["ns/a/1", "ns/a/2"]
    assert cache.size() == 3
    assert cache.clear("a/") == 2
    assert cache.keys() == ["ns/b/1"]
    assert cache.clear() == 1
    assert cache.size() == 0


def test_get_many_and_set_many(cache: Cache) -> None:
    assert cache.set_many({"a": 1, "b": None, "c": [3]}) == 3
    assert cache.get_many(["a", "b", "missing", "c"]) == {"a": 1, "b": None, "c": [3]}
    assert cache.get_many([]) == {}
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.sets) == (3, 1, 3)


def test_get_many_counts_each_requested_key(cache: Cache) -> None:
    cache.set("a", 1)
    assert cache.get_many(["a", "a"]) == {"a": 1}
    stats = cache.stats()
    assert (stats.hits, stats.misses) == (2, 0)


def test_two_namespaces_on_one_driver_are_isolated(clock: FakeClock) -> None:
    driver = MemoryDriver(clock=clock)
    a, ab = Cache(driver, namespace="a", clock=clock), Cache(driver, namespace="ab", clock=clock)
    a.set("k", "from a")
    ab.set("k", "from ab")
    assert (a.get("k"), ab.get("k")) == ("from a", "from ab")
    assert a.keys() == ["a/k"]
    assert a.size() == 1
    assert a.clear() == 1
    assert (a.get("k"), ab.get("k")) == (None, "from ab")


def test_a_namespace_never_contains_another() -> None:
    # "app" would otherwise contain "app/v2": app.clear() would wipe it and app.get("v2/k") would read it.
    with pytest.raises(ConfigurationError, match="without '/'"):
        Cache(namespace="app/v2")


# -- TTLs ----------------------------------------------------------------------------------------------------------


def test_ttl_in_seconds_timedelta_or_none(cache: Cache, clock: FakeClock) -> None:
    cache.set("default", 1)
    cache.set("seconds", 1, ttl=5)
    cache.set("delta", 1, ttl=timedelta(seconds=20))
    cache.set("forever", 1, ttl=None)
    clock.advance(5)
    assert cache.get("seconds") is None
    assert cache.get("delta") == 1
    clock.advance(15)
    assert cache.get("delta") is None
    assert cache.get("default") == 1
    clock.advance(40)
    assert cache.get("default") is None
    clock.advance(10**8)
    assert cache.get("forever") == 1


def test_namespace_ttl_none_and_timedelta(clock: FakeClock) -> None:
    forever = Cache(namespace="f", ttl=None, clock=clock)
    minute = Cache(namespace="m", ttl=timedelta(minutes=1), clock=clock)
    forever.set("k", 1)
    minute.set("k", 1)
    assert minute.ttl == 60.0
    clock.advance(61)
    assert (forever.get("k"), minute.get("k")) == (1, None)


def test_ttl_zero_does_not_store(cache: Cache) -> None:
    assert cache.set("k", 1, ttl=0) is False
    assert cache.get("k", "miss") == "miss"


@pytest.mark.parametrize("bad", [-1, -0.001, timedelta(seconds=-1), float("nan"), float("inf"), "10", True])
def test_bad_ttls_are_configuration_errors(cache: Cache, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        cache.set("k", 1, ttl=bad)
    with pytest.raises(ConfigurationError, match="ttl"):
        Cache(ttl=bad)
    with pytest.raises(ConfigurationError, match="ttl"):
        cached(ttl=bad)


# -- method policies (through decorated reads) -------------------------------------------------------------------


class Source:
    """A fake data source that counts how often each key is loaded."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {"u1": {"id": "u1", "v": 1}, "none": None, "big": "x" * 2000}
        self.loads: Counter[str] = Counter()

    def load(self, id: str) -> Any:
        self.loads[id] += 1
        return self.rows.get(id)


def reader(cache: Cache, source: Source, action: str = "get", **options: Any) -> Any:
    @cached(action=action, namespace=cache, resource="users", **options)
    def read(id: str) -> Any:
        return source.load(id)

    return read


def test_disabled_action_calls_through_and_stores_nothing(clock: FakeClock) -> None:
    cache = Cache(namespace="p", clock=clock, method_policies={"get": False})
    source = Source()
    read = reader(cache, source)
    for _ in range(3):
        assert read("u1") == {"id": "u1", "v": 1}
    assert source.loads["u1"] == 3
    assert cache.keys() == []
    assert "get" in cache.disabled_actions


def test_ttl_per_action(clock: FakeClock) -> None:
    cache = Cache(namespace="p", ttl=100, clock=clock, method_policies={"get": {"ttl": 5}})
    source = Source()
    get, query = reader(cache, source, "get"), reader(cache, source, "query")
    get("u1")
    query("u1")
    clock.advance(6)
    get("u1")
    query("u1")
    assert source.loads["u1"] == 3  # get reloaded after 5 s, query (namespace TTL) did not


def test_decorator_ttl_overrides_the_policy(clock: FakeClock) -> None:
    cache = Cache(namespace="p", ttl=100, clock=clock, method_policies={"get": {"ttl": 50}})
    source = Source()
    read = reader(cache, source, ttl=timedelta(seconds=10))
    read("u1")
    clock.advance(11)
    read("u1")
    assert source.loads["u1"] == 2


def test_max_payload_bytes_returns_big_results_without_storing_them(clock: FakeClock) -> None:
    cache = Cache(namespace="p", clock=clock, method_policies={"get": {"max_payload_bytes": 100}})
    source = Source()
    read = reader(cache, source)
    for _ in range(2):
        assert read("big") == "x" * 2000
        assert read("u1") == {"id": "u1", "v": 1}
    assert source.loads == Counter({"big": 2, "u1": 1})


def test_min_hits_before_store_stores_on_the_nth_miss(clock: FakeClock) -> None:
    cache = Cache(namespace="p", clock=clock, method_policies={"get": {"min_hits_before_store": 3}})
    source = Source()
    read = reader(cache, source)
    for expected_loads in (1, 2, 3, 3, 3):
        read("u1")
        assert source.loads["u1"] == expected_loads
    assert cache.stats().sets == 1


def test_min_hits_counters_are_bounded(clock: FakeClock) -> None:
    cache = Cache(namespace="p", clock=clock, method_policies={"get": {"min_hits_before_store": 2}})
    calls = Counter[int]()

    @cached(action="get", namespace=cache, resource="n")
    def read(id: int) -> int:
        calls[id] += 1
        return id

    for i in range(10_500):
        read(i)
    assert len(cache._miss_counts) <= 10_000
    assert cache.keys() == []
    # Still working after the bound was hit: the second miss of a recent key stores it.
    read(10_499)
    read(10_499)
    assert calls[10_499] == 2


def test_none_is_cached_with_its_own_ttl(clock: FakeClock) -> None:
    cache = Cache(namespace="p", ttl=300, clock=clock, method_policies={"get": {"none_ttl": 5}})
    source = Source()
    read = reader(cache, source)
    assert read("none") is None
    assert read("none") is None
    assert source.loads["none"] == 1  # None is a value: negative caching
    read("u1")
    clock.advance(6)
    assert read("none") is None
    read("u1")
    assert source.loads == Counter({"none": 2, "u1": 1})


def test_none_ttl_zero_never_stores_none(clock: FakeClock) -> None:
    cache = Cache(namespace="p", clock=clock, method_policies={"get": {"none_ttl": 0}})
    source = Source()
    read = reader(cache, source)
    for _ in range(3):
        assert read("none") is None
        read("u1")
    assert source.loads == Counter({"none": 3, "u1": 1})


def test_none_is_cached_by_default(clock: FakeClock) -> None:
    cache = Cache(namespace="p", clock=clock)
    source = Source()
    read = reader(cache, source)
    read("none")
    read("none")
    assert source.loads["none"] == 1


# -- fail open ---------------------------------------------------------------------------------------------------


def test_a_failing_backend_never_fails_a_read(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    driver = FlakyDriver()
    cache = Cache(driver, namespace="fo", clock=clock)
    source = Source()
    read = reader(cache, source)
    assert read("u1") == {"id": "u1", "v": 1}
    assert read("u1") == {"id": "u1", "v": 1}
    assert source.loads["u1"] == 1

    driver.failing = {"get", "set"}
    with caplog.at_level(logging.DEBUG, logger="cachekit"):
        for version in (2, 3, 4):
            source.rows["u1"] = {"id": "u1", "v": version}
            assert read("u1") == {"id": "u1", "v": version}  # fresh every time: never an exception
        assert cache.get("u1", "default") == "default"
        assert cache.set("x", 1) is False
    assert source.loads["u1"] == 4
    assert cache.stats().errors >= 4
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one cause, logged once
    assert "flaky" in warnings[0].getMessage()

    driver.failing = set()  # back: the entry stored before the outage is still within its TTL, and hits resume
    errors = cache.stats().errors
    assert read("u1") == {"id": "u1", "v": 1}
    assert source.loads["u1"] == 4
    assert cache.stats().errors == errors


def test_each_cause_is_logged_once(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    driver = FlakyDriver()
    cache = Cache(driver, namespace="fo", clock=clock)
    with caplog.at_level(logging.WARNING, logger="cachekit"):
        driver.data["fo/bad1"] = b"garbage"
        driver.data["fo/bad2"] = b"more garbage"
        cache.get("bad1")
        cache.get("bad2")
        driver.failing = {"get"}
        cache.get("a")
        cache.get("b")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert any("corrupt" in m for m in messages)
    assert any("connection refused" in m for m in messages)


def test_a_corrupt_blob_is_a_miss_dropped_and_replaced(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache(namespace="c", clock=clock)
    source = Source()
    read = reader(cache, source)
    key = read.cache_key("u1")
    cache.driver.set(key, b"\xce\x01 definitely not an envelope")
    with caplog.at_level(logging.WARNING, logger="cachekit"):
        assert read("u1") == {"id": "u1", "v": 1}
    assert cache.stats().errors == 1
    assert read("u1") == {"id": "u1", "v": 1}
    assert source.loads["u1"] == 1  # the fresh value replaced the corrupt blob
    assert "corrupt" in caplog.text


def test_an_unserializable_result_is_returned_uncached_with_a_warning(cache: Cache) -> None:
    made: list[object] = []

    @cached(action="get", namespace=cache, resource="things")
    def read(id: str) -> object:
        made.append(object())
        return made[-1]

    with pytest.warns(UncacheableValueWarning, match="returned uncached"):
        first = read("a")
    assert first is made[0]
    with pytest.warns(UncacheableValueWarning):
        read("a")
    assert len(made) == 2
    assert cache.keys() == []
    with pytest.warns(UncacheableValueWarning):
        assert cache.set("k", object()) is False


# -- invalidation safety -------------------------------------------------------------------------------------------


class Repo:
    """A resource whose reads are cached and whose writes invalidate, on a given cache."""

    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.rows: dict[str, int] = {"u1": 1}
        self.loads = 0

    @cached(action="get")
    def get(self, id: str) -> int:
        self.loads += 1
        return self.rows[id]

    @invalidates("update")
    def update(self, id: str, value: int) -> None:
        self.rows[id] = value


def test_no_stale_read_while_only_clearing_fails(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    driver = FlakyDriver()
    repo = Repo(Cache(driver, namespace="inv", clock=clock, retry_delay=0))
    assert repo.get("u1") == 1
    driver.failing = {"clear"}  # e.g. a Redis user without UNLINK rights, an S3 role without DeleteObject
    with caplog.at_level(logging.CRITICAL, logger="cachekit"):
        repo.update("u1", 2)
        assert repo.get("u1") == 2


def test_get_many_serves_nothing_stale_after_a_failed_invalidation(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    driver = FlakyDriver()
    cache = Cache(driver, namespace="inv", clock=clock, retry_delay=0)
    repo = Repo(cache)
    repo.get("u1")
    driver.failing = {"clear"}
    with caplog.at_level(logging.CRITICAL, logger="cachekit"):
        repo.update("u1", 2)
        assert cache.get_many([repo.get.cache_key("u1")]) == {}


def test_a_load_that_overlaps_a_write_does_not_store_its_stale_result(clock: FakeClock) -> None:
    cache = Cache(namespace="gen", clock=clock)
    rows = {"u1": 1}
    loads = 0

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> int:
        nonlocal loads
        loads += 1
        value = rows[id]  # read the old row ...
        if loads == 1:  # ... and while this slow read runs, a write lands and invalidates
            rows[id] = 2
            cache.invalidate(Invalidation("users", ids=[id]))
        return value

    assert get("u1") == 1  # the caller gets what was read
    assert get("u1") == 2  # but it was not stored over the write
    assert get("u1") == 2
    assert loads == 2


def test_a_load_racing_a_write_in_another_thread_does_not_store(clock: FakeClock) -> None:
    cache = Cache(namespace="gen", clock=clock)
    rows = {"u1": 1}
    read_started, write_done = threading.Event(), threading.Event()

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> int:
        value = rows[id]
        if not read_started.is_set():
            read_started.set()
            assert write_done.wait(5)
        return value

    @invalidates("update", namespace=cache, resource="users")
    def update(id: str, value: int) -> None:
        rows[id] = value

    reader_thread = threading.Thread(target=get, args=("u1",))
    reader_thread.start()
    assert read_started.wait(5)
    update("u1", 2)
    write_done.set()
    reader_thread.join(5)
    assert get("u1") == 2


# -- stats ---------------------------------------------------------------------------------------------------------


def test_stats_snapshot(cache: Cache) -> None:
    cache.set("a", 1)
    cache.set("b", 2)
    cache.get("a")
    cache.get("a")
    cache.get("zz")
    cache.delete("b")
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.sets, stats.deletes, stats.errors) == (2, 1, 2, 1, 0)
    assert stats.hit_rate == pytest.approx(2 / 3)
    assert stats.size == 1
    assert stats.enabled is True
    assert stats.driver == "memory"
    assert stats.memory_usage_bytes is not None
    assert stats.memory_usage_bytes > 0
    as_dict = stats.as_dict()
    assert as_dict["hits"] == 2
    assert as_dict["hit_rate"] == pytest.approx(2 / 3)
    cache.reset_stats()
    assert cache.stats().hits == 0


def test_stats_can_be_disabled(clock: FakeClock) -> None:
    cache = Cache(namespace="s", clock=clock, config={"enable_stats": False})
    cache.set("a", 1)
    assert cache.get("a") == 1
    cache.get("b")
    stats = cache.stats()
    assert stats.enabled is False
    assert (stats.hits, stats.misses, stats.sets) == (0, 0, 0)
    assert stats.size == 1


def test_driver_specific_helpers_are_reached_through_the_driver(cache: Cache) -> None:
    cache.set("k", "v")
    assert isinstance(cache.driver, MemoryDriver)
    memory = cache.driver.get_memory_stats()
    assert memory["memory_usage"]["current"] > 0
    assert {"memory_usage_percent", "evicted_due_to_memory", "system_memory", "max_memory_percent"} <= set(memory)
    details = cache.stats().details  # and the driver's own counters travel in every stats snapshot
    assert details["memory_usage_bytes"] == memory["memory_usage"]["current"]
    with pytest.raises(AttributeError):
        cache.no_such_helper  # type: ignore[attr-defined]  # noqa: B018


# -- configuration -------------------------------------------------------------------------------------------------


def test_unknown_driver_names_the_choices() -> None:
    with pytest.raises(DriverNotFound, match=r"unknown cache driver 'memcached'.*'memory'.*'redis'"):
        Cache(driver="memcached")


def test_unknown_driver_option_names_the_accepted_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"bogus.*accepted options: .*eviction_policy.*max_size"):
        Cache(config={"bogus": 1})
    with pytest.raises(ConfigurationError, match=r"'max_szie' \(did you mean 'max_size'\?\)"):
        Cache(config={"max_szie": 1})


def test_a_driver_instance_takes_no_driver_options(clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError, match=r"\['max_size'\].*driver instance"):
        Cache(MemoryDriver(), config={"max_size": 3})
    # Namespace options are fine with an instance.
    Cache(MemoryDriver(), config={"case_sensitive": False, "enable_stats": False, "serializer": "json"})


@pytest.mark.parametrize("bad", ["", "   ", "/", "a/b", 5])
def test_bad_namespace(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="namespace must be a non-empty string"):
        Cache(namespace=bad)


def test_namespace_defaults_and_is_trimmed() -> None:
    assert Cache().namespace == "cachekit"
    assert Cache(namespace=" users ").prefix == "users/"


@pytest.mark.parametrize("bad", [5, "max_size=3", ["max_size"]])
def test_config_must_be_a_mapping(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="config must be a dict"):
        Cache(config=bad)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retry_attempts": 0}, "retry_attempts"),
        ({"retry_delay": -1}, "retry_delay"),
        ({"driver": 42}, "driver must be"),
        ({"config": {"enable_compression": "yes"}}, "enable_compression"),
        ({"method_policies": {"get": {"ttl": -1}}}, "method_policies"),
    ],
)
def test_other_bad_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Cache(**kwargs)


@pytest.mark.parametrize("bad", ["", None, 5, b"k"])
def test_bad_keys(cache: Cache, bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="cache key must be a non-empty string"):
        cache.get(bad)
    with pytest.raises(ConfigurationError, match="cache key must be a non-empty string"):
        cache.set(bad, 1)


def test_case_insensitive_namespace_folds_manual_keys(clock: FakeClock) -> None:
    cache = Cache(namespace="ci", clock=clock, config={"case_sensitive": False})
    cache.set("User:1", "ada")
    assert cache.get("user:1") == "ada"
    assert cache.get("USER:1") == "ada"


def test_case_insensitive_namespace_finds_keys_from_key_for(clock: FakeClock) -> None:
    cache = Cache(namespace="ci", clock=clock, config={"case_sensitive": False})
    key = cache.key_for("count", resource="users", partition="by_city", partition_values={"city": "São Paulo"})
    with pytest.raises(ConfigurationError, match="belong to decorated reads"):
        cache.set(key, 3)  # a read's key: only the read itself stores there (issue 19)
    cache._write(key, 3, 60.0, None)  # as the decorated read stores it
    assert cache.keys() == [key]
    assert cache.get(key) == 3
    upper = Cache(namespace="CI", clock=clock, config={"case_sensitive": False})
    key = upper.key_for("list", resource="users")
    upper._write(key, [1], 60.0, None)
    assert upper.get(key) == [1]


def test_case_insensitive_namespace_folds_prefixes(clock: FakeClock) -> None:
    cache = Cache(namespace="ci", clock=clock, config={"case_sensitive": False})
    cache.set("User:1", 1)
    cache.set("Other", 2)
    assert cache.keys("User:") == ["ci/user:1"]
    assert cache.clear("USER:") == 1
    assert cache.keys() == ["ci/other"]


def test_close_and_context_manager() -> None:
    with Cache(namespace="ctx") as cache:
        cache.set("k", 1)
        assert cache.get("k") == 1
    assert cache.driver.size() == 0  # the memory driver drops its entries on close
    assert "ctx" in repr(cache)


class _LongLivedRepo:
    """A class whose decorated method outlives the caches of its instances (as in apps that build a Cache per
    test or per settings change)."""

    name = "users"

    def __init__(self) -> None:
        self.cache = Cache(driver="memory", namespace="gone")

    @cached(action="get")
    def get(self, id: str) -> str:
        return id


def test_a_discarded_cache_is_freed_even_after_decorated_reads() -> None:
    # The key memo lives on the Cache, not on the long-lived decorated method, so reads keep no cache alive.
    import gc
    import weakref

    def use_one() -> weakref.ref[Cache]:
        repo = _LongLivedRepo()
        repo.get("u1")
        repo.get("u1")
        return weakref.ref(repo.cache)

    ref = use_one()
    gc.collect()
    assert ref() is None


def test_driver_none_is_refused_not_silently_memory() -> None:
    with pytest.raises(ConfigurationError, match="'null' to turn caching off"):
        Cache(driver=None)
