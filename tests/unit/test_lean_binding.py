"""The lean binding of ``@cached`` plain methods (``cachekit._binding``): it must pass for a bound method, act on
its own instance (its ``cache`` and ``name`` as they are at each call), and keep classmethods, staticmethods and
``async def`` on the wrapt path.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import inspect
import threading
import types
import warnings
from typing import Any

import pytest

from cachekit import Cache, cached
from cachekit._binding import BoundCached, BoundCachedFunction, CachedFunction
from cachekit._cached_state import CachedCallable


class Repo:
    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.loads = 0

    @cached(action="get")
    def get(self, id: str, *, full: bool = False) -> dict[str, Any]:
        """Fetch one user."""
        self.loads += 1
        return {"id": id, "full": full, "n": self.loads, "by": type(self).__name__}


@pytest.fixture
def repo() -> Repo:
    return Repo(Cache(driver="memory", namespace="lb"))


def test_it_looks_like_a_bound_method(repo: Repo) -> None:
    bound = repo.get
    assert isinstance(bound, BoundCached)
    assert inspect.ismethod(bound)
    assert bound.__self__ is repo
    assert bound.__doc__ == "Fetch one user."
    assert bound.__module__ == __name__
    assert bound.__name__ == "get"
    assert bound.__wrapped__.__func__ is Repo.__dict__["get"].__wrapped__
    assert bound.__func__ is Repo.__dict__["get"].__wrapped__
    assert list(inspect.signature(bound).parameters) == ["id", "full"]
    assert inspect.signature(bound).parameters["full"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "Repo.get" in repr(bound)


def test_two_bindings_of_one_instance_are_equal_of_two_instances_not(repo: Repo) -> None:
    other = Repo(repo.cache)
    assert repo.get == repo.get
    assert hash(repo.get) == hash(repo.get)
    assert repo.get is not repo.get  # a fresh binding per lookup, like a bound method
    assert repo.get != other.get
    assert len({repo.get, repo.get, other.get}) == 2


def test_calls_through_the_class_share_keys_and_entries_with_calls_through_the_instance(repo: Repo) -> None:
    assert Repo.get.cache_key(repo, "u1") == repo.get.cache_key("u1")
    first = repo.get("u1")
    assert Repo.get(repo, "u1") == first  # a hit of the entry the lean path stored
    assert repo.loads == 1
    via_class = Repo.get(repo, "u2")
    assert repo.get("u2") == via_class
    assert repo.loads == 2
    assert isinstance(Repo.__dict__["get"], CachedFunction)


def test_the_helpers_act_on_the_bound_instance(repo: Repo) -> None:
    assert repo.get("u1")["n"] == 1
    assert repo.get.uncached("u1")["n"] == 2
    assert repo.get("u1")["n"] == 1
    assert repo.get.invalidate("u1") is True
    assert repo.get.invalidate("u1") is False
    assert repo.get("u1")["n"] == 3
    assert repo.get.refresh("u1")["n"] == 4
    assert repo.get("u1")["n"] == 4
    assert repo.get("u1", skip_cache=True)["n"] == 5
    assert repo.get("u1", skip_cache=False)["n"] == 4  # skip_cache=False is an ordinary cached read
    assert repo.get("u1")["n"] == 4
    assert repo.get("u1", full=True)["full"] is True  # keyword arguments key separately
    assert repo.get.cache_key("u1", full=True) != repo.get.cache_key("u1")


def test_a_subclass_overriding_the_method_and_calling_super() -> None:
    class Plain(Repo):
        def get(self, id: str, *, full: bool = False) -> dict[str, Any]:  # type: ignore[override]
            return {**super().get(id, full=full), "wrapped": True}

    class Cached(Repo):
        @cached(action="get")
        def get(self, id: str, *, full: bool = False) -> dict[str, Any]:
            return {**super().get(id, full=full), "override": True}

    cache = Cache(driver="memory", namespace="lb-sub")
    plain = Plain(cache)
    assert plain.get("a") == {"id": "a", "full": False, "n": 1, "by": "Plain", "wrapped": True}
    assert plain.get("a")["n"] == 1
    over = Cached(Cache(driver="memory", namespace="lb-sub2"))
    got: list[dict[str, Any]] = []
    # Same action, resource and arguments: the override's load re-enters the key it is loading. In a thread,
    # so that a single-flight waiting for itself fails the test instead of hanging it.
    worker = threading.Thread(target=lambda: got.extend([over.get("a"), over.get("a")]), daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "a @cached override calling super() on its own key never returned"
    assert got == [{"id": "a", "full": False, "n": 1, "by": "Cached", "override": True}] * 2
    assert over.loads == 1


def test_a_subclass_overriding_with_an_async_cached_method_calling_super() -> None:
    class Source:
        name = "users"

        def __init__(self) -> None:
            self.cache = Cache(driver="memory", namespace="lb-async-sub")
            self.loads = 0

        @cached(action="get")
        async def get(self, id: str) -> dict[str, Any]:
            self.loads += 1
            return {"id": id}

    class Over(Source):
        @cached(action="get")
        async def get(self, id: str) -> dict[str, Any]:
            return {**(await super().get(id)), "over": True}

    over = Over()

    async def twice() -> list[dict[str, Any]]:
        return [await asyncio.wait_for(over.get("a"), 5), await asyncio.wait_for(over.get("a"), 5)]

    assert asyncio.run(twice()) == [{"id": "a", "over": True}] * 2
    assert over.loads == 1


def test_one_decorated_function_shared_by_two_classes() -> None:
    def load(self: Any, id: str) -> str:
        self.loads += 1
        return f"{self.name}:{id}"

    shared = cached(action="get")(load)
    cache = Cache(driver="memory", namespace="lb-shared")

    class A:
        name = "alpha"
        get = shared

        def __init__(self) -> None:
            self.cache, self.loads = cache, 0

    class B:
        name = "beta"
        get = shared

        def __init__(self) -> None:
            self.cache, self.loads = cache, 0

    a, b = A(), B()
    assert (a.get("1"), b.get("1")) == ("alpha:1", "beta:1")
    assert (a.get("1"), b.get("1")) == ("alpha:1", "beta:1")
    assert (a.loads, b.loads) == (1, 1)
    assert a.get.cache_key("1") != b.get.cache_key("1")


def test_a_copy_reads_its_own_cache_and_name(repo: Repo) -> None:
    repo.get("u1")
    twin = copy.copy(repo)
    twin.cache = Cache(driver="memory", namespace="lb-copy")
    assert twin.get.__self__ is twin
    assert twin.get("u1")["n"] == 2  # a miss in the copy's own cache
    assert twin.cache.hits == 0
    assert twin.cache.misses == 1
    renamed = copy.copy(repo)
    renamed.name = "people"  # type: ignore[misc]
    assert renamed.get.cache_key("u1") != repo.get.cache_key("u1")
    assert "people" in renamed.get.cache_key("u1")
    assert renamed.get("u1")["n"] == 2  # its own loads counter, copied from repo's 1
    assert renamed.get("u1")["n"] == 2
    assert repo.get("u1")["n"] == 1  # the original's entry is untouched


def test_cache_and_name_are_read_at_every_call(repo: Repo) -> None:
    first_cache = repo.cache
    repo.get("u1")
    repo.get("u1")
    assert repo.loads == 1
    repo.cache = Cache(driver="memory", namespace="lb-other")
    assert repo.get("u1")["n"] == 2
    assert repo.cache.misses == 1
    repo.name = "admins"  # type: ignore[misc]
    assert repo.get("u1")["n"] == 3
    assert "admins" in repo.get.cache_key("u1")
    repo.name = ""  # type: ignore[misc]  # no usable name: the class name
    assert "resource=repo" in repo.get.cache_key("u1")
    assert repo.get("u1")["n"] == 4
    del repo.name
    repo.cache = first_cache
    assert repo.get("u1")["n"] == 1  # back to the first namespace's entry
    assert repo.loads == 4


def test_classes_with_slots() -> None:
    class Slotted:
        __slots__ = ("cache", "loads")

        def __init__(self, cache: Cache) -> None:
            self.cache, self.loads = cache, 0

        @cached(action="get")
        def get(self, id: str) -> list[str]:
            self.loads += 1
            return [id]

    obj = Slotted(Cache(driver="memory", namespace="lb-slots"))
    assert obj.get("x") == ["x"]
    assert obj.get("x") == ["x"]
    assert obj.loads == 1
    assert obj.get.__self__ is obj
    assert "resource=slotted" in obj.get.cache_key("x")
    bare = Slotted.__new__(Slotted)  # no cache attribute set at all
    with pytest.raises(Exception, match="has no cache"):
        bare.get("x")


def test_a_class_level_cache_and_an_explicit_namespace_and_resource() -> None:
    explicit = Cache(driver="memory", namespace="lb-explicit")

    class Service:
        cache = Cache(driver="memory", namespace="lb-class")
        loads = 0

        @cached(action="get")
        def get(self, id: str) -> str:
            type(self).loads += 1
            return id

        @cached(action="find", namespace=explicit, resource="things")
        def find(self, q: str) -> str:
            return q * 2

    service = Service()
    assert service.get("a") == service.get("a") == "a"
    assert Service.loads == 1
    assert Service.cache.hits == 1
    assert service.find("b") == service.find("b") == "bb"
    assert explicit.hits == 1
    assert "resource=things" in service.find.cache_key("b")


def test_classmethods_staticmethods_and_async_keep_the_wrapt_path() -> None:
    cache = Cache(driver="memory", namespace="lb-wrapt")
    counts = {"cm": 0, "sm": 0, "am": 0}

    class Mixed:
        name = "mixed"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="cm", namespace=cache)
        @classmethod
        def cm(cls, x: int) -> int:
            counts["cm"] += 1
            return x + 1

        @cached(action="sm", namespace=cache, resource="mixed")
        @staticmethod
        def sm(x: int) -> int:
            counts["sm"] += 1
            return x * 2

        @cached(action="am")
        async def am(self, x: int) -> int:
            counts["am"] += 1
            return x * 3

    obj = Mixed()
    for bound in (obj.cm, Mixed.cm, obj.sm, obj.am):
        assert isinstance(bound, BoundCachedFunction), bound
        assert not isinstance(bound, BoundCached)
    assert obj.cm(1) == Mixed.cm(1) == 2
    assert obj.sm(2) == Mixed.sm(2) == 4
    assert asyncio.run(obj.am(3)) == asyncio.run(obj.am(3)) == 9
    assert counts == {"cm": 1, "sm": 1, "am": 1}
    assert list(inspect.signature(obj.cm).parameters) == ["x"]
    assert obj.cm.cache_key(1) == Mixed.cm.cache_key(1)


def test_methods_of_many_classes_decorated_in_a_loop_keep_their_own_state() -> None:
    classes = []
    for i in range(12):

        class Made:
            name = f"res{i}"
            ttl_marker = i

            def __init__(self, cache: Cache) -> None:
                self.cache = cache

            @cached(action="get", ttl=60 + i)
            def get(self, id: str) -> tuple[int, str]:
                return (self.ttl_marker, id)

        classes.append(Made)
    cache = Cache(driver="memory", namespace="lb-loop")
    objs = [cls(cache) for cls in classes]
    for _ in range(2):
        assert [obj.get("x") for obj in objs] == [(i, "x") for i in range(12)]
    assert cache.hits == 12
    assert cache.misses == 12
    assert len({obj.get.cache_key("x") for obj in objs}) == 12
    assert all(obj.get.__class__ is types.MethodType for obj in objs)  # passes for a bound method
    assert len({type(obj.get) for obj in objs}) == 12  # each method its own binding class
    assert len({obj.get._state for obj in objs}) == 12  # type: ignore[attr-defined]


def test_a_disabled_action_calls_through(repo: Repo) -> None:
    repo.cache = Cache(driver="memory", namespace="lb-off", method_policies={"get": False})
    assert repo.get("u1")["n"] == 1
    assert repo.get("u1")["n"] == 2
    assert repo.cache.hits == repo.cache.misses == 0


def test_no_memo_slot_is_kept_for_a_disabled_action(repo: Repo) -> None:
    """The hit paths skip the disabled-action check for a slot they find in the memo: none may be there."""
    repo.cache = Cache(driver="memory", namespace="lb-off-memo", method_policies={"get": False})
    state = type(repo.get)._state  # type: ignore[attr-defined]
    key = state.memo_lookup(repo.cache, "users", repo, ("u1",), {}, (state, "users", "u1"))
    assert key is not None
    assert key.startswith("lb-off-memo/resource=users/action=get/")
    assert repo.cache._key_memo == {}  # rendered, never remembered
    assert repo.get.refresh("u1")["n"] == 1  # stores an entry under that key whatever the policies say
    assert repo.cache.get(key) is not None
    assert repo.get("u1")["n"] == 2  # which a disabled read never serves
    assert repo.get("u1")["n"] == 3
    enabled = Cache(driver="memory", namespace="lb-on-memo")
    state.memo_lookup(enabled, "users", repo, ("u1",), {}, (state, "users", "u1"))
    assert len(enabled._key_memo) == 1


def test_a_cache_attribute_that_is_not_a_cache() -> None:
    """The hit path reads the memo of whatever ``cache`` holds; anything but a Cache takes the long way."""

    class Facade:  # a resource facade exposes its Cache as namespace_cache
        def __init__(self, cache: Cache) -> None:
            self.namespace_cache = cache

    class Mine(Cache):
        pass

    inner = Cache(driver="memory", namespace="lb-facade")
    repo = Repo(inner)
    repo.cache = Facade(inner)  # type: ignore[assignment]
    assert repo.get("u1")["n"] == 1
    assert repo.get("u1")["n"] == 1
    assert inner.hits == 1
    repo.cache = Mine(driver="memory", namespace="lb-subclass")
    assert repo.get("u1")["n"] == 2
    assert repo.get("u1")["n"] == 2
    assert repo.cache.hits == 1
    for bad in (None, {"_key_memo": {}}, "cache"):
        repo.cache = bad  # type: ignore[assignment]
        with pytest.raises(Exception, match="has no cache"):
            repo.get("u1")


class _Unhashing:
    def __hash__(self) -> int:
        raise ValueError("no hash")


@pytest.mark.parametrize("odd", [None, "", 0, ["users"], b"users", _Unhashing()])
def test_a_name_that_is_not_a_non_empty_string_reads_the_class_resource(odd: Any) -> None:
    """The hit path checks ``name`` only after a miss: any name but a non-empty string still keys by the class."""

    class Odd(Repo):
        name = odd  # type: ignore[assignment]

    cache = Cache(driver="memory", namespace="lb-odd")
    obj, plain = Odd(cache), Repo(cache)
    assert "/resource=odd/" in obj.get.cache_key("u1")
    assert obj.get("u1")["n"] == 1
    assert obj.get("u1")["n"] == 1  # cached, under the class's resource
    assert plain.get("u1")["n"] == 1  # resource "users": an entry of its own
    assert obj.get("u1")["by"] == "Odd"
    assert cache.hits == 2
    assert all(type(slot[1]) is str and slot[1] for slot in cache._key_memo)  # no slot of an odd name


def test_a_str_subclass_name_names_its_value() -> None:
    """A StrEnum member (any str subclass) names the resource of its value, on every path."""

    class Resources(enum.StrEnum):
        USERS = "users"

    class Enumed(Repo):
        name = Resources.USERS  # type: ignore[assignment]

    cache = Cache(driver="memory", namespace="lb-enum")
    obj, plain = Enumed(cache), Repo(cache)
    assert obj.get.cache_key("u1") == plain.get.cache_key("u1")
    assert obj.get("u1")["by"] == "Enumed"
    assert plain.get("u1")["by"] == "Enumed"  # one resource: the entry the first call stored
    assert Enumed.get(obj, "u1")["by"] == "Enumed"  # the wrapt path too


def test_unkeyable_arguments_call_through_uncached(repo: Repo) -> None:
    with pytest.warns(Warning, match="uncached"):
        first = repo.get(object())  # type: ignore[arg-type]
    assert first["n"] == 1
    assert repo.cache.hits == repo.cache.misses == 0


def test_an_exception_in_the_method_is_raised_and_nothing_is_cached() -> None:
    class Failing:
        name = "f"

        def __init__(self) -> None:
            self.cache = Cache(driver="memory", namespace="lb-fail")
            self.calls = 0

        @cached(action="get")
        def get(self, id: str) -> str:
            self.calls += 1
            raise LookupError(id)

    obj = Failing()
    for _ in range(2):
        with pytest.raises(LookupError):
            obj.get("x")
    assert obj.calls == 2


def test_the_helpers_are_written_once_for_every_kind_of_binding(repo: Repo) -> None:
    """``.cache_key``, ``.uncached``, ``.invalidate`` and ``.refresh`` are :class:`CachedCallable`'s, whatever
    ``@cached`` made: each kind says only how a call splits (``_call_parts``)."""

    class Kinds:
        cache = Cache(driver="memory", namespace="lb-kinds")

        @cached(action="cm")
        @classmethod
        def cm(cls, id: str) -> str:
            return id

        @cached(action="sm")
        @staticmethod
        def sm(id: str) -> str:
            return id

        @cached(action="am")
        async def am(self, id: str) -> str:
            return id

    @cached(action="get", cache=repo.cache, resource="users")
    def function(id: str) -> str:
        return id

    made = [repo.get, Repo.get, Repo.__dict__["get"], Kinds.cm, Kinds().cm, Kinds.sm, Kinds().sm, Kinds().am,
            Kinds.am, function, repo.get._wrapt()]  # fmt: skip
    for obj in made:
        assert isinstance(obj, CachedCallable)
        for helper in ("cache_key", "uncached", "invalidate", "refresh"):
            owners = [cls for cls in type(obj).__mro__ if helper in vars(cls)]
            assert owners == [CachedCallable], (obj, helper, owners)


def test_refresh_of_an_async_method_stores_the_awaited_result() -> None:
    """It stored the coroutine: refused by the codec (a warning), so the next read loaded again."""

    class Users:
        name = "users"

        def __init__(self) -> None:
            self.cache = Cache(driver="memory", namespace="lb-arefresh")
            self.loads = 0

        @cached(action="get")
        async def get(self, id: str) -> dict[str, Any]:
            self.loads += 1
            return {"id": id, "n": self.loads}

    users = Users()

    async def run() -> list[Any]:
        first = await users.get("a")
        refreshed = await users.get.refresh("a")
        return [first, refreshed, await users.get("a"), await Users.get.refresh(users, "a"), await users.get("a")]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = asyncio.run(run())
    assert [value["n"] for value in got] == [1, 2, 2, 3, 3]
    assert users.loads == 3


def test_uncached_of_a_stacked_cache_reads_neither_cache() -> None:
    inner_cache = Cache(driver="memory", namespace="lb-inner")
    outer_cache = Cache(driver="memory", namespace="lb-outer")
    loads: list[str] = []

    @cached(action="get", cache=outer_cache, resource="users")
    @cached(action="get", cache=inner_cache, resource="users")
    def get(id: str) -> dict[str, Any]:
        loads.append(id)
        return {"id": id, "n": len(loads)}

    assert get("a") == {"id": "a", "n": 1}
    assert get.uncached("a") == {"id": "a", "n": 2}  # through the inner cache too, not its entry
    assert get.refresh("a") == {"id": "a", "n": 3}
    assert get("a") == {"id": "a", "n": 3}
    assert loads == ["a"] * 3


def test_every_positional_argument_is_part_of_the_key() -> None:
    """The lean binding's one-argument slot (its first positional argument alone) is for one-argument calls."""

    class Pages:
        name = "pages"

        def __init__(self) -> None:
            self.cache = Cache(driver="memory", namespace="lb-positional")
            self.loads = 0

        @cached(action="get")
        def get(self, id: str, page: int = 1) -> list[Any]:
            self.loads += 1
            return [id, page]

    pages = Pages()
    assert pages.get("a") == ["a", 1]
    assert pages.get("a", 2) == ["a", 2]
    assert pages.get("a", 3) == ["a", 3]
    assert pages.get("a") == ["a", 1]
    assert pages.get("a", 2) == ["a", 2]
    assert pages.loads == 3
