"""@cached and @invalidates on functions, methods, classmethods, staticmethods and coroutines."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates, register_key_resolver
from cachekit.drivers.base import Driver
from cachekit.drivers.memory import MemoryDriver
from cachekit.errors import ConfigurationError, UncacheableValueWarning
from tests.conftest import FakeClock


@pytest.fixture
def cache(clock: FakeClock) -> Cache:
    return Cache(namespace="deco", ttl=60, clock=clock)


# -- where the decorator goes ------------------------------------------------------------------------------------


def test_plain_function_with_namespace(cache: Cache) -> None:
    calls: list[str] = []

    @cached(action="get", namespace=cache, resource="users")
    def get_user(id: str) -> dict[str, str]:
        """Load one user."""
        calls.append(id)
        return {"id": id}

    assert get_user("u1") == {"id": "u1"}
    assert get_user("u1") == {"id": "u1"}
    assert get_user("u2") == {"id": "u2"}
    assert calls == ["u1", "u2"]
    assert sorted(cache.keys()) == sorted([get_user.cache_key("u1"), get_user.cache_key("u2")])
    assert get_user.cache_key("u1").startswith("deco/resource=users/action=get/")


class UserRepository:
    """A repository with a ``name`` and a ``cache`` class attribute, as in the README."""

    name = "users"
    cache: Cache

    def __init__(self, rows: dict[str, Any] | None = None) -> None:
        self.rows = rows if rows is not None else {"u1": {"id": "u1", "v": 1}, "u2": {"id": "u2", "v": 1}}
        self.loads: Counter[str] = Counter()

    @cached(action="get")
    def get(self, id: str, fields: list[str] | None = None) -> Any:
        """Fetch one user."""
        self.loads[id] += 1
        row = self.rows.get(id)
        return {k: row[k] for k in fields} if row and fields else row

    @cached(action="list")
    def list(self, limit: int | None = None, offset: int = 0) -> list[str]:
        self.loads["list"] += 1
        ids = sorted(self.rows)[offset:]
        return ids[:limit] if limit is not None else ids

    @cached(action="count")
    @classmethod
    def count_all(cls) -> int:
        cls.class_loads += 1
        return 42

    class_loads = 0

    @invalidates("update")
    def update(self, id: str, data: dict[str, Any]) -> None:
        self.rows[id] = {**self.rows[id], **data}


@pytest.fixture
def repo(cache: Cache) -> UserRepository:
    UserRepository.cache = cache
    UserRepository.class_loads = 0
    return UserRepository()


def test_method_uses_the_class_cache_attribute(repo: UserRepository, cache: Cache) -> None:
    assert repo.get("u1") == {"id": "u1", "v": 1}
    assert repo.get("u1") == {"id": "u1", "v": 1}
    assert repo.loads["u1"] == 1
    assert cache.keys() == [repo.get.cache_key("u1")]


def test_instance_cache_attribute_wins(clock: FakeClock) -> None:
    class Repo:
        name = "things"

        def __init__(self, cache: Cache) -> None:
            self.cache = cache

        @cached(action="get")
        def get(self, id: str) -> str:
            return id

    a, b = Cache(namespace="a", clock=clock), Cache(namespace="b", clock=clock)
    Repo(a).get("x")
    Repo(b).get("y")
    assert a.keys() == [Repo(a).get.cache_key("x")]
    assert b.keys()[0].startswith("b/resource=things/")


def test_classmethod_with_the_decorator_above(repo: UserRepository) -> None:
    assert UserRepository.count_all() == 42
    assert repo.count_all() == 42
    assert UserRepository.count_all() == 42
    assert UserRepository.class_loads == 1
    assert repo.count_all.cache_key() == repo.cache.keys()[0]


def test_staticmethod_with_namespace(cache: Cache) -> None:
    calls: list[str] = []

    class Tools:
        @cached(action="get", namespace=cache, resource="tools")
        @staticmethod
        def lookup(id: str) -> str:
            calls.append(id)
            return id.upper()

    assert Tools.lookup("a") == "A"
    assert Tools().lookup("a") == "A"
    assert calls == ["a"]
    assert cache.keys() == [Tools.lookup.cache_key("a")]
    assert Tools.lookup.uncached("b") == "B"
    assert Tools().lookup.uncached("b") == "B"
    assert calls == ["a", "b", "b"]


def test_staticmethod_helpers_through_an_instance(cache: Cache) -> None:
    class Tools:
        @cached(action="get", namespace=cache, resource="tools")
        @staticmethod
        def lookup(id: str) -> str:
            return id.upper()

    Tools().lookup("a")
    assert Tools().lookup.cache_key("a") == Tools.lookup.cache_key("a")
    assert Tools().lookup.invalidate("a") is True


def test_async_def_is_cached(cache: Cache) -> None:
    calls: list[str] = []

    @cached(action="get", namespace=cache, resource="users")
    async def get_user(id: str) -> dict[str, str]:
        calls.append(id)
        await asyncio.sleep(0)
        return {"id": id}

    async def main() -> None:
        assert await get_user("u1") == {"id": "u1"}
        assert await get_user("u1") == {"id": "u1"}
        assert await get_user("u1", skip_cache=True) == {"id": "u1"}

    asyncio.run(main())
    assert calls == ["u1", "u1"]
    assert inspect.iscoroutinefunction(get_user)


class BlockingMemoryDriver(MemoryDriver):
    """The memory driver posing as a blocking one, so async calls go through cachekit's executor (threads)."""

    blocking = True
    supports_async = False
    aget = Driver.aget  # the base class's twins: the sync method in a worker thread
    aset = Driver.aset


@pytest.mark.parametrize("blocking", [False, True], ids=["inline-driver", "threaded-driver"])
def test_concurrent_coroutines_missing_one_key_load_once(clock: FakeClock, blocking: bool) -> None:
    driver = BlockingMemoryDriver(clock=clock) if blocking else MemoryDriver(clock=clock)
    cache = Cache(driver, namespace="async", clock=clock)
    rows = {"u1": 1}
    calls = 0

    @cached(action="get", namespace=cache, resource="users")
    async def get(id: str) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.02)
        return rows[id]

    @invalidates("update", namespace=cache, resource="users")
    async def update(id: str, value: int) -> None:
        rows[id] = value

    async def main() -> None:
        assert await asyncio.gather(*(get("u1") for _ in range(20))) == [1] * 20
        assert calls == 1
        assert await get("u1") == 1
        await update("u1", 2)
        assert await asyncio.gather(*(get("u1") for _ in range(5))) == [2] * 5
        assert calls == 2

    asyncio.run(main())


def test_cancelling_the_first_caller_does_not_cancel_the_others(cache: Cache) -> None:
    @cached(action="get", namespace=cache, resource="users")
    async def get(id: str) -> str:
        await asyncio.sleep(0.05)
        return id

    async def main() -> str:
        first = asyncio.create_task(get("u1"))
        await asyncio.sleep(0.01)  # the first caller is loading
        second = asyncio.create_task(get("u1"))
        await asyncio.sleep(0.01)  # the second one waits for it
        first.cancel()
        return await second

    assert asyncio.run(main()) == "u1"


def test_async_method_on_a_class(cache: Cache) -> None:
    class Repo:
        name = "accounts"

        def __init__(self) -> None:
            self.cache = cache
            self.loads = 0

        @cached(action="get")
        async def get(self, id: str) -> str:
            self.loads += 1
            return id

    repo = Repo()

    async def main() -> None:
        assert await repo.get("a") == "a"
        assert await repo.get("a") == "a"

    asyncio.run(main())
    assert repo.loads == 1
    assert cache.keys() == [repo.get.cache_key("a")]
    assert "resource=accounts" in cache.keys()[0]


# -- resource names and self ---------------------------------------------------------------------------------------


def test_resource_name_from_name_attribute_class_name_or_argument(cache: Cache) -> None:
    class ProductRepository:
        def __init__(self) -> None:
            self.cache = cache

        @cached(action="list")
        def list(self) -> list[int]:
            return [1]

        @cached(action="count", resource="things")
        def count(self) -> int:
            return 1

    class Named(ProductRepository):
        name = "products"

    assert "/resource=productrepository/" in ProductRepository().list.cache_key()
    assert "/resource=products/" in Named().list.cache_key()
    assert "/resource=things/" in Named().count.cache_key()


def test_self_never_enters_the_key(repo: UserRepository) -> None:
    other = UserRepository(rows={"u1": {"id": "u1", "v": 99}})
    assert repo.get.cache_key("u1") == other.get.cache_key("u1")
    assert repo.get("u1") == {"id": "u1", "v": 1}
    assert other.get("u1") == {"id": "u1", "v": 1}  # a hit on the entry the first instance stored
    assert other.loads["u1"] == 0


# -- skip_cache and the helpers ------------------------------------------------------------------------------------


def test_skip_cache_reads_through_and_does_not_store(repo: UserRepository, cache: Cache) -> None:
    assert repo.get("u1", skip_cache=True) == {"id": "u1", "v": 1}
    assert cache.keys() == []
    repo.get("u1")
    repo.rows["u1"] = {"id": "u1", "v": 2}
    assert repo.get("u1", skip_cache=True) == {"id": "u1", "v": 2}
    assert repo.get("u1") == {"id": "u1", "v": 1}  # the cached entry was neither read nor replaced
    assert repo.get("u1", skip_cache=False) == {"id": "u1", "v": 1}


def test_helpers_through_an_instance(repo: UserRepository, cache: Cache) -> None:
    key = repo.get.cache_key("u1")
    assert key == repo.get.cache_key(id="u1")
    assert repo.get.uncached("u1") == {"id": "u1", "v": 1}
    assert cache.keys() == []
    repo.get("u1")
    assert cache.keys() == [key]
    assert repo.get.invalidate("u1") is True
    assert repo.get.invalidate("u1") is False
    repo.rows["u1"] = {"id": "u1", "v": 2}
    assert repo.get.refresh("u1") == {"id": "u1", "v": 2}
    loads = repo.loads["u1"]
    assert repo.get("u1") == {"id": "u1", "v": 2}
    assert repo.loads["u1"] == loads


def test_helpers_through_the_class_take_the_instance_first(repo: UserRepository, cache: Cache) -> None:
    assert UserRepository.get.cache_key(repo, "u1") == repo.get.cache_key("u1")
    assert UserRepository.get.uncached(repo, "u1") == {"id": "u1", "v": 1}
    assert UserRepository.get(repo, "u1") == {"id": "u1", "v": 1}
    assert repo.get("u1") == {"id": "u1", "v": 1}
    assert repo.loads["u1"] == 2  # uncached + the first cached call
    assert UserRepository.get.invalidate(repo, "u1") is True
    repo.rows["u1"] = {"id": "u1", "v": 3}
    assert UserRepository.get.refresh(repo, "u1") == {"id": "u1", "v": 3}
    assert cache.get(repo.get.cache_key("u1")) == {"id": "u1", "v": 3}


def test_helpers_on_a_plain_function(cache: Cache) -> None:
    source = {"a": 1}

    @cached(action="get", namespace=cache, resource="things")
    def get(id: str) -> int:
        return source[id]

    key = get.cache_key("a")
    assert get.uncached("a") == 1
    assert cache.keys() == []
    assert get("a") == 1
    assert cache.keys() == [key]
    source["a"] = 2
    assert get.invalidate("a") is True
    assert get("a") == 2
    source["a"] = 3
    assert get.refresh("a") == 3
    assert get("a") == 3


def test_classmethod_helpers_through_the_class(repo: UserRepository) -> None:
    assert UserRepository.count_all.cache_key() == repo.count_all.cache_key()
    assert UserRepository.count_all.uncached() == 42
    UserRepository.count_all()
    assert UserRepository.count_all.invalidate() is True
    assert UserRepository.count_all.refresh() == 42


def test_wrapt_preserves_the_function(cache: Cache) -> None:
    def get_user(id: str, *, fields: list[str] | None = None) -> dict[str, str]:
        """Load one user."""
        return {"id": id}

    wrapped = cached(action="get", namespace=cache, resource="users")(get_user)
    assert wrapped.__wrapped__ is get_user
    assert wrapped.__name__ == "get_user"
    assert wrapped.__doc__ == "Load one user."
    assert inspect.signature(wrapped) == inspect.signature(get_user)
    assert callable(wrapped)


def test_wrapt_preserves_methods(repo: UserRepository) -> None:
    assert UserRepository.get.__name__ == "get"
    assert UserRepository.get.__doc__ == "Fetch one user."
    assert list(inspect.signature(repo.get).parameters) == ["id", "fields"]
    assert list(inspect.signature(UserRepository.get).parameters) == ["self", "id", "fields"]
    assert UserRepository.__dict__["get"].__wrapped__.__name__ == "get"


# -- single-flight across threads --------------------------------------------------------------------------------


def test_32_threads_missing_one_key_call_the_function_once(cache: Cache) -> None:
    calls = 0
    lock = threading.Lock()

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> dict[str, str]:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.05)  # a slow source, so every thread misses while the first one loads
        return {"id": id}

    barrier = threading.Barrier(32)
    results: list[Any] = []

    def worker() -> None:
        barrier.wait()
        results.append(get("u1"))

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert calls == 1
    assert results == [{"id": "u1"}] * 32


def test_a_failing_load_fails_every_waiter_and_caches_nothing(cache: Cache) -> None:
    calls = 0
    release = threading.Event()

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> str:
        nonlocal calls
        calls += 1
        release.wait(5)
        raise LookupError(id)

    errors: list[BaseException] = []

    def worker() -> None:
        try:
            get("u1")
        except LookupError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)  # let the followers queue behind the leader
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 8
    assert calls < 8  # the followers shared the leader's failure
    assert cache.keys() == []


# -- keys from arguments ----------------------------------------------------------------------------------------


def test_keyword_and_positional_calls_share_a_key(repo: UserRepository) -> None:
    assert repo.get.cache_key("u1") == repo.get.cache_key(id="u1")
    assert repo.get.cache_key("u1", None) == repo.get.cache_key("u1")  # a default given explicitly
    assert repo.get.cache_key("u1", ["v"]) == repo.get.cache_key("u1", fields=["v"])
    assert repo.list.cache_key() == repo.list.cache_key(limit=None) == repo.list.cache_key(None, 0)
    repo.get("u1")
    repo.get(id="u1")
    assert repo.loads["u1"] == 1


def test_arguments_that_change_the_result_are_in_the_key(repo: UserRepository) -> None:
    assert repo.list(limit=1) == ["u1"]
    assert repo.list(limit=2) == ["u1", "u2"]
    assert repo.list(limit=1, offset=1) == ["u2"]
    assert repo.list() == ["u1", "u2"]
    assert repo.get("u1", fields=["v"]) == {"v": 1}
    assert repo.get("u1") == {"id": "u1", "v": 1}
    assert repo.loads["list"] == 4
    assert len({repo.list.cache_key(limit=10), repo.list.cache_key(limit=100), repo.list.cache_key(offset=10)}) == 3


def test_default_values_of_another_type_are_not_dropped(cache: Cache) -> None:
    @cached(action="list", namespace=cache, resource="flags")
    def flags(limit: int = 1) -> int:
        return limit

    assert flags.cache_key(True) != flags.cache_key()
    assert flags.cache_key(1) == flags.cache_key()
    assert flags.cache_key(1.5) != flags.cache_key()


def test_keyword_order_does_not_change_the_item_key(cache: Cache) -> None:
    class Accounts:
        name = "accounts"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get", id_param="user_id")
        def get(self, user_id: str, fields: list[str] | None = None) -> str:
            return user_id

    accounts = Accounts()
    assert accounts.get.cache_key(fields=["a"], user_id="u1") == accounts.get.cache_key("u1", fields=["a"])


def test_an_unkeyable_argument_is_called_uncached_with_a_warning(cache: Cache) -> None:
    calls = 0

    @cached(action="query", namespace=cache, resource="users")
    def query(filter: Any) -> str:
        nonlocal calls
        calls += 1
        return "rows"

    marker = object()
    with pytest.warns(UncacheableValueWarning, match=r"argument 'filter' .*ignore=\('filter',\)"):
        assert query(marker) == "rows"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per parameter, not once per request (issue 17)
        assert query(marker) == "rows"
    assert calls == 2
    assert cache.keys() == []


# -- decorator configuration errors --------------------------------------------------------------------------------


def test_decorator_configuration_errors(cache: Cache) -> None:
    with pytest.raises(ConfigurationError, match=r"@cached\(\)"):

        @cached  # type: ignore[arg-type]  # forgot the parentheses
        def f() -> None: ...

    with pytest.raises(ConfigurationError, match=r"a namespace name goes to the Cache"):
        cached(namespace="users")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="invalidates"):
        invalidates("")
    with pytest.raises(ConfigurationError, match=r"namespace=\.\.\.\) takes a cachekit\.Cache"):
        invalidates("update", namespace={})  # type: ignore[arg-type]


def test_a_method_without_a_cache_says_how_to_give_it_one() -> None:
    class NoCache:
        @cached(action="get")
        def get(self, id: str) -> str:
            return id

    with pytest.raises(ConfigurationError, match=r"pass cache=Cache\(\.\.\.\).*cache = Cache"):
        NoCache().get("x")


# -- @invalidates: every write, then a read, never returns stale data ----------------------------------------------

PARTITIONS = {"by_region": ["region"]}


class Store:
    """A resource with every read and write kind; ``.uncached`` reads are the truth the cache must match."""

    name = "users"
    partitions = PARTITIONS

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.rows: dict[str, dict[str, Any]] = {
            "u1": {"id": "u1", "region": "eu", "name": "Ada"},
            "u2": {"id": "u2", "region": "us", "name": "Bob"},
            "u3": {"id": "u3", "region": "eu", "name": "Cyd"},
        }
        self.loads: Counter[str] = Counter()

    def _row(self, id: str) -> dict[str, Any] | None:
        row = self.rows.get(id)
        return dict(row) if row else None

    def _put(self, data: dict[str, Any]) -> dict[str, Any]:
        self.rows[data["id"]] = {**self.rows.get(data["id"], {}), **data}
        return dict(self.rows[data["id"]])

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any] | None:
        self.loads["get"] += 1
        return self._row(id)

    @cached(action="exists")
    def exists(self, id: str) -> bool:
        return id in self.rows

    @cached(action="get_many")
    def get_many(self, ids: list[str]) -> list[dict[str, Any] | None]:
        return [self._row(i) for i in ids]

    @cached(action="list")
    def list(self, limit: int | None = None) -> list[str]:
        return sorted(self.rows)[:limit]

    @cached(action="page")
    def page(self, page: int = 1, size: int = 2) -> list[str]:
        return sorted(self.rows)[(page - 1) * size : page * size]

    @cached(action="count")
    def count(self, *, partition: str | None = None, partition_values: dict[str, Any] | None = None) -> int:
        self.loads[f"count:{(partition_values or {}).get('region')}"] += 1
        wanted = (partition_values or {}).get("region")
        return sum(1 for r in self.rows.values() if wanted is None or r["region"] == wanted)


def region(value: str) -> dict[str, Any]:
    return {"partition": "by_region", "partition_values": {"region": value}}


READS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("get", ("u1",), {}),
    ("get", ("u2",), {}),
    ("get", ("u9",), {}),
    ("exists", ("u9",), {}),
    ("exists", ("u1",), {}),
    ("get_many", (["u1", "u2", "u9"],), {}),
    ("list", (), {}),
    ("list", (), {"limit": 1}),
    ("page", (), {}),
    ("page", (2,), {}),
    ("count", (), {}),
    ("count", (), region("eu")),
    ("count", (), region("us")),
]


def read_all(store: Store, *, truth: bool = False) -> list[Any]:
    out = []
    for action, args, kwargs in READS:
        method = getattr(store, action)
        out.append((method.uncached if truth else method)(*args, **kwargs))
    return out


def old_record(self: Store, id: str, *_: Any) -> dict[str, Any] | None:
    return self._row(id)


def old_by_data(self: Store, data: dict[str, Any]) -> dict[str, Any] | None:
    return self._row(data["id"])


def old_many(self: Store, ids_or_items: list[Any]) -> list[dict[str, Any] | None]:
    return [self._row(i if isinstance(i, str) else i["id"]) for i in ids_or_items]


def make_writes(before: bool) -> type[Store]:
    """A Store subclass with every write, with or without ``before=`` (precise or every-partition clearing)."""

    def b(fn: Callable[..., Any]) -> Callable[..., Any] | None:
        return fn if before else None

    class Writes(Store):
        @invalidates("insert", before=b(old_by_data))
        def insert(self, data: dict[str, Any]) -> dict[str, Any]:
            return self._put(data)

        @invalidates("insert_many", before=b(old_many))
        def insert_many(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [self._put(item) for item in items]

        @invalidates("update", before=b(old_record))
        def update(self, id: str, data: dict[str, Any]) -> dict[str, Any]:
            return self._put({**data, "id": id})

        @invalidates("patch", before=b(old_record))
        def patch(self, id: str, data: dict[str, Any]) -> None:
            self._put({**data, "id": id})

        @invalidates("replace", before=b(old_record))
        def replace(self, id: str, data: dict[str, Any]) -> None:
            self.rows[id] = {**data, "id": id}

        @invalidates("upsert", before=b(old_by_data))
        def upsert(self, data: dict[str, Any]) -> dict[str, Any]:
            return self._put(data)

        @invalidates("delete", before=b(old_record))
        def delete(self, id: str) -> None:
            self.rows.pop(id, None)

        @invalidates("delete_many", before=b(old_many))
        def delete_many(self, ids: list[str]) -> None:
            for id in ids:
                self.rows.pop(id, None)

        @invalidates("delete_all")
        def delete_all(self) -> None:
            self.rows.clear()

        @invalidates("rename_everyone")  # an action cachekit does not know: the whole resource is cleared
        def rename_everyone(self, suffix: str) -> None:
            for row in self.rows.values():
                row["name"] += suffix

    return Writes


WRITES: dict[str, Callable[[Any], Any]] = {
    "insert": lambda s: s.insert({"id": "u9", "region": "us", "name": "New"}),
    "insert_many": lambda s: s.insert_many([{"id": "u9", "region": "eu", "name": "N1"},
                                            {"id": "u8", "region": "us", "name": "N2"}]),
    "update-move": lambda s: s.update("u1", {"region": "us"}),
    "update-name": lambda s: s.update("u1", {"name": "Ava"}),
    "patch": lambda s: s.patch("u2", {"region": "eu"}),
    "replace": lambda s: s.replace("u2", {"region": "eu", "name": "Bo"}),
    "upsert-new": lambda s: s.upsert({"id": "u9", "region": "eu", "name": "Up"}),
    "upsert-existing": lambda s: s.upsert({"id": "u3", "region": "us"}),
    "delete": lambda s: s.delete("u1"),
    "delete-missing": lambda s: s.delete("u404"),
    "delete_many": lambda s: s.delete_many(["u1", "u2"]),
    "delete_all": lambda s: s.delete_all(),
    "unknown-write": lambda s: s.rename_everyone("!"),
}


@pytest.mark.parametrize("before", [True, False], ids=["with-before", "without-before"])
@pytest.mark.parametrize("write", list(WRITES))
def test_a_write_then_a_read_never_returns_stale_data(clock: FakeClock, write: str, before: bool) -> None:
    store = make_writes(before)(Cache(namespace="w", clock=clock))
    assert read_all(store) == read_all(store, truth=True)  # warm every entry
    WRITES[write](store)
    assert read_all(store) == read_all(store, truth=True)


def test_a_write_in_one_partition_leaves_the_others_cached_with_before(clock: FakeClock) -> None:
    store = make_writes(before=True)(Cache(namespace="w", clock=clock))
    for kwargs in (region("eu"), region("us"), {}):
        store.count(**kwargs)
    store.update("u1", {"region": "eu", "name": "Ava"})  # stays in eu
    for kwargs in (region("eu"), region("us"), {}):
        store.count(**kwargs)
    assert store.loads["count:us"] == 1  # untouched partition: still cached
    assert store.loads["count:eu"] == 2
    assert store.loads["count:None"] == 2  # unpartitioned aggregates are always cleared

    store.update("u1", {"region": "us"})  # a move clears both partitions
    assert store.count(**region("us")) == 2
    assert store.count(**region("eu")) == 1


def test_a_partial_update_returning_the_record_is_precise(clock: FakeClock) -> None:
    store = make_writes(before=True)(Cache(namespace="w", clock=clock))
    store.count(**region("us"))
    store.update("u1", {"name": "Ava"})  # u1 is in eu; update() returns the whole new record
    store.count(**region("us"))
    assert store.loads["count:us"] == 1
    store.patch("u1", {"name": "Ana"})  # patch() returns nothing: old record + data tell the partition
    store.count(**region("us"))
    assert store.loads["count:us"] == 1
    store.patch("u1", {"region": "us"})
    assert store.count(**region("us")) == 2


def test_without_before_every_partition_is_cleared(clock: FakeClock) -> None:
    store = make_writes(before=False)(Cache(namespace="w", clock=clock))
    store.count(**region("us"))
    store.update("u1", {"region": "eu", "name": "Ava"})
    store.count(**region("us"))
    assert store.loads["count:us"] == 2


def test_a_write_never_clears_another_resource(clock: FakeClock) -> None:
    cache = Cache(namespace="w", clock=clock)
    store = make_writes(before=False)(cache)

    class Archive(Store):
        name = "users_archive"

    archive = Archive(cache)
    archive.get("u1")
    archive.list()
    store.delete_all()
    archive.get("u1")
    archive.list()
    assert archive.loads["get"] == 1


def test_invalidation_runs_when_the_write_raises(cache: Cache) -> None:
    class Flaky(Store):
        @invalidates("update")
        def update(self, id: str, data: dict[str, Any]) -> None:
            self._put({**data, "id": id})  # the write lands ...
            raise TimeoutError("... but the acknowledgement is lost")

    store = Flaky(cache)
    assert store.get("u1")["name"] == "Ada"
    with pytest.raises(TimeoutError):
        store.update("u1", {"name": "Ava"})
    assert store.get("u1")["name"] == "Ava"


def test_invalidates_on_plain_functions_and_coroutines(cache: Cache) -> None:
    rows = {"u1": 1}

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> int:
        return rows[id]

    @invalidates("update", namespace=cache, resource="users")
    def update(id: str, value: int) -> None:
        rows[id] = value

    @invalidates("delete", namespace=cache, resource="users")
    async def adelete(id: str) -> None:
        rows[id] = 0

    assert get("u1") == 1
    update("u1", 2)
    assert get("u1") == 2
    asyncio.run(adelete("u1"))
    assert get("u1") == 0
    assert update.__name__ == "update"
    assert inspect.signature(update) == inspect.signature(update.__wrapped__)


def test_keyword_writes_in_any_order_invalidate(cache: Cache) -> None:
    class Repo(Store):
        @invalidates("update")
        def update(self, id: str, data: dict[str, Any]) -> None:
            self._put({**data, "id": id})

    store = Repo(cache)
    store.get("u1")
    store.update(data={"name": "Ava"}, id="u1")
    assert store.get("u1")["name"] == "Ava"


def test_an_insert_returning_the_new_id_clears_a_cached_miss_of_that_id(cache: Cache) -> None:
    class AutoIncrement(Store):
        @invalidates("insert")
        def insert(self, data: dict[str, Any]) -> str:
            new_id = f"u{len(self.rows) + 1}"
            self.rows[new_id] = {**data, "id": new_id}
            return new_id

    store = AutoIncrement(cache)
    assert store.get("u4") is None  # None is cached: negative caching is on by default
    assert store.insert({"region": "eu", "name": "Dee"}) == "u4"
    assert store.get("u4") == {"id": "u4", "region": "eu", "name": "Dee"}


def test_a_write_with_an_unkeyable_id_still_succeeds_and_invalidates(cache: Cache) -> None:
    class ObjectId:
        def __init__(self, value: str) -> None:
            self.value = value

    rows: dict[Any, int] = {}
    oid = ObjectId("abc")

    @cached(action="list", namespace=cache, resource="docs")
    def count() -> int:
        return len(rows)

    @invalidates("update", namespace=cache, resource="docs")
    def update(id: ObjectId, value: int) -> None:
        rows[id] = value

    assert count() == 0
    update(oid, 1)
    assert count() == 1


def test_invalidate_helper_in_a_case_insensitive_namespace(clock: FakeClock) -> None:
    cache = Cache(namespace="Users", clock=clock, config={"case_sensitive": False})

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> str:
        return id

    get("U1")
    assert get.invalidate("u1") is True


@dataclass
class Row:
    """An ORM-style record: an object, not a Mapping."""

    id: str
    region: str


class ObjectStore:
    """A resource whose records are objects (SQLAlchemy/Django models, dataclasses), with partitions."""

    name = "people"
    partitions = PARTITIONS

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.rows = {"p1": Row("p1", "eu"), "p2": Row("p2", "eu")}

    @cached(action="count")
    def count(self, *, partition: str | None = None, partition_values: dict[str, Any] | None = None) -> int:
        wanted = (partition_values or {}).get("region")
        return sum(1 for r in self.rows.values() if wanted is None or r.region == wanted)

    @invalidates("insert")
    def insert(self, row: Row) -> None:
        self.rows[row.id] = row

    @invalidates("delete", before=lambda self, id: self.rows.get(id))
    def delete(self, id: str) -> None:
        del self.rows[id]


def test_inserting_an_object_record_clears_the_partitions(cache: Cache) -> None:
    store = ObjectStore(cache)
    assert store.count(**region("eu")) == 2
    store.insert(Row("p3", "eu"))
    assert store.count(**region("eu")) == 3


def test_before_returning_an_object_falls_back_to_every_partition(cache: Cache) -> None:
    store = ObjectStore(cache)
    assert store.count(**region("eu")) == 2
    store.delete("p1")
    assert store.count(**region("eu")) == 1


@pytest.fixture
def registry_snapshot() -> Any:
    """Restore the global key-resolver registry after a test that registers actions."""
    from cachekit import keys

    resolvers, items, in_use = dict(keys._RESOLVERS), set(keys._ITEM_ACTIONS), set(keys._IN_USE)
    yield
    keys._RESOLVERS.clear()
    keys._RESOLVERS.update(resolvers)
    keys._ITEM_ACTIONS.clear()
    keys._ITEM_ACTIONS.update(items)
    keys._IN_USE.clear()
    keys._IN_USE.update(in_use)


def test_the_action_defaults_to_the_function_name(cache: Cache, registry_snapshot: None) -> None:
    @cached(namespace=cache, resource="people")
    def search_people_test(q: str) -> list[str]:
        return [q]

    assert "/action=search_people_test/" in search_people_test.cache_key("ada")
    assert search_people_test.cache_key("ada") != search_people_test.cache_key("bob")


def test_replacing_a_resolver_already_used_by_a_read_is_refused(cache: Cache, registry_snapshot: None) -> None:
    # Reads keyed by the old resolver would never be cleared by the new one's invalidation: refuse, loudly.
    class Profiles:
        name = "users"

        def __init__(self) -> None:
            self.cache = cache
            self.rows = {"u1": "Ada"}

        @cached(action="profile_late_test")
        def profile(self, id: str, full: bool = False) -> str:
            return self.rows[id]

        @invalidates("update")
        def update(self, id: str, value: str) -> None:
            self.rows[id] = value

    with pytest.raises(ConfigurationError, match="before decorating"):
        register_key_resolver("profile_late_test", item=True)  # e.g. in the app's setup, after the import
    profiles = Profiles()
    assert profiles.profile("u1") == "Ada"
    profiles.update("u1", "Bea")
    assert profiles.profile("u1") == "Bea"


def test_the_null_driver_turns_caching_off_without_code_changes(clock: FakeClock) -> None:
    cache = Cache(driver="null", namespace="off", clock=clock)
    calls = 0

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> str:
        nonlocal calls
        calls += 1
        return id

    assert [get("a"), get("a")] == ["a", "a"]
    assert calls == 2
    assert cache.set("k", 1) is True  # accepted and dropped
    assert cache.get("k", "miss") == "miss"
    assert cache.stats().driver == "null"
