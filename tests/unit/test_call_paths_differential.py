"""The decorator's hit bodies side by side: one call sequence through every way a ``@cached`` read is called.

* H1: a plain method through an instance (the lean binding's ``__call__``, ``cachekit._binding``);
* H2: the same method through wrapt's binding of the same instance (what the lean binding replaces), looked up
  on its class (``Users.get(users, ...)``), and a plain function (``CachedState.__call__`` through wrapt);
* H3: an ``async def`` method (``CachedState.acall``).

Each variant has its own memory cache (same options, same fake clock) and its own copy of the source. The same
hypothesis operations go to all of them: calls with positional and keyword arguments, ``skip_cache=True`` and
``False``, actions disabled by policy or stored only from the second miss, source changes with and without an
invalidation, time passing, and the helpers (``.cache_key``, ``.uncached``, ``.invalidate``, ``.refresh``)
called through each. Every variant must return the same values, call its source with the same arguments, and
end every step with the same counters and the same stored keys as H1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachekit import Cache, Invalidation, cached
from cachekit._binding import BoundCached, BoundCachedFunction
from tests.conftest import FakeClock, same_value

PARTITIONS = {"by_region": ["region"]}
Log = list[tuple[Any, ...]]


class Source:
    """What a variant's reads load from: versions per id, and a log of every call that reached it."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.log: Log = []

    def get(self, id: Any, extra: Any) -> dict[str, Any]:
        self.log.append(("get", id, extra))
        return {"id": id, "extra": extra, "v": self.versions.get(str(id), 0)}

    def count(self, partition: Any, partition_values: Any, region: Any) -> list[Any]:
        self.log.append(("count", partition, partition_values, region))
        return [partition, partition_values, region, sum(self.versions.values())]


class Users:
    """H1 (through an instance) and H2 (through the class)."""

    name = "users"
    partitions = PARTITIONS

    def __init__(self, cache: Cache, source: Source) -> None:
        self.cache, self.source = cache, source

    @cached(action="get")
    def get(self, id: Any, extra: Any = None) -> dict[str, Any]:
        return self.source.get(id, extra)

    @cached(action="count")
    def count(self, partition: Any = None, partition_values: Any = None, region: Any = None) -> list[Any]:
        return self.source.count(partition, partition_values, region)


class AsyncUsers:
    """H3."""

    name = "users"
    partitions = PARTITIONS

    def __init__(self, cache: Cache, source: Source) -> None:
        self.cache, self.source = cache, source

    @cached(action="get")
    async def get(self, id: Any, extra: Any = None) -> dict[str, Any]:
        return self.source.get(id, extra)

    @cached(action="count")
    async def count(self, partition: Any = None, partition_values: Any = None, region: Any = None) -> list[Any]:
        return self.source.count(partition, partition_values, region)


def functions(cache: Cache, source: Source) -> dict[str, Callable[..., Any]]:
    """H2 without an instance: plain functions with an explicit namespace and resource."""

    @cached(action="get", namespace=cache, resource="users")
    def get(id: Any, extra: Any = None) -> dict[str, Any]:
        return source.get(id, extra)

    @cached(action="count", namespace=cache, resource="users")
    def count(partition: Any = None, partition_values: Any = None, region: Any = None) -> list[Any]:
        return source.count(partition, partition_values, region)

    return {"get": get, "count": count}


class Variant:
    """One way of calling the reads, with its own cache and source."""

    def __init__(self, how: str, clock: FakeClock, policies: dict[str, Any]) -> None:
        self.how = how
        self.cache = Cache(driver="memory", namespace="calls", clock=clock, method_policies=policies)
        self.cache.declare_partitions("users", PARTITIONS)  # the functions have no instance to declare them
        self.source = Source()
        if how == "async":
            self.target: Any = AsyncUsers(self.cache, self.source)
        elif how == "function":
            self.target = functions(self.cache, self.source)
        else:
            self.target = Users(self.cache, self.source)

    async def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        kwargs = dict(kwargs)  # the paths pop skip_cache from what they are given
        if self.how == "instance":
            bound = getattr(self.target, method)
            assert isinstance(bound, BoundCached)  # the lean binding, H1
            return bound(*args, **kwargs)
        if self.how == "wrapt":
            through = getattr(self.target, method)._wrapt()
            assert isinstance(through, BoundCachedFunction)  # H2, through wrapt's binding
            return through(*args, **kwargs)
        if self.how == "class":
            return getattr(Users, method)(self.target, *args, **kwargs)
        if self.how == "function":
            return self.target[method](*args, **kwargs)
        result: Awaitable[Any] = getattr(self.target, method)(*args, **kwargs)
        return await result

    async def helper(self, helper: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``.cache_key``, ``.uncached``, ``.invalidate`` or ``.refresh`` of the read, through this variant."""
        if self.how == "class":
            obj: Any = getattr(Users, method)
            args = (self.target, *args)
        elif self.how == "function":
            obj = self.target[method]
        else:
            obj = getattr(self.target, method)
            obj = obj._wrapt() if self.how == "wrapt" else obj
        result = getattr(obj, helper)(*args, **dict(kwargs))
        return await result if self.how == "async" and helper in ("uncached", "refresh") else result

    def state(self) -> tuple[Any, ...]:
        cache = self.cache
        return cache.hits, cache.misses, cache.sets, cache.errors, sorted(cache.keys(orphans=True))


GET_CALLS = [
    (("u1",), {}),
    ((), {"id": "u1"}),
    (("u2",), {"extra": 1}),
    (("u2", 1), {}),
    (("u1",), {"skip_cache": True}),
    (("u2",), {"skip_cache": False}),
    ((), {"id": "u1", "extra": "x", "skip_cache": True}),
    ((), {"id": "u2", "extra": [1, 2]}),
    ((7,), {}),
]
COUNT_CALLS = [
    ((), {}),
    ((), {"partition": "by_region", "partition_values": {"region": "eu"}}),
    (("by_region", {"region": "eu"}), {}),
    ((), {"region": "eu"}),
    ((), {"partition": "by_region", "partition_values": {"region": "us"}, "skip_cache": True}),
    ((), {"partition": "by_region", "partition_values": {"region": "us"}, "skip_cache": False}),
]
IDS = st.sampled_from(["u1", "u2"])
HELPERS = ("cache_key", "uncached", "invalidate", "refresh")
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("get"), st.sampled_from(range(len(GET_CALLS)))),
        st.tuples(st.just("get"), st.sampled_from(range(len(GET_CALLS)))),
        st.tuples(st.just("count"), st.sampled_from(range(len(COUNT_CALLS)))),
        st.tuples(st.just("change"), IDS),  # the source changes; nothing is invalidated
        st.tuples(st.just("write"), IDS),  # the source changes and the write invalidates
        st.tuples(st.just("advance"), st.sampled_from([1.0, 400.0])),
        st.tuples(st.just("helper"), st.sampled_from(HELPERS), st.sampled_from(range(len(GET_CALLS)))),
    ),
    max_size=30,
)
POLICIES = {
    "enabled": {},
    "count-disabled": {"count": False},
    "get-disabled": {"get": False},
    "second-miss": {"get": {"min_hits_before_store": 2}, "count": {"ttl": 1}},
}
HOWS = ("instance", "wrapt", "class", "function", "async")


@pytest.mark.parametrize("policy", list(POLICIES))
@settings(max_examples=40, deadline=None)
@given(ops=OPS)
def test_every_way_of_calling_a_read_does_what_the_lean_binding_does(policy: str, ops: list[tuple[Any, ...]]) -> None:
    clock = FakeClock()
    variants = [Variant(how, clock, POLICIES[policy]) for how in HOWS]

    async def run() -> None:
        for op in ops:
            kind = op[0]
            if kind == "advance":
                clock.advance(op[1])
                continue
            if kind in ("change", "write"):
                for variant in variants:
                    variant.source.versions[op[1]] = variant.source.versions.get(op[1], 0) + 1
                    if kind == "write":
                        variant.cache.invalidate(Invalidation("users", ids=[op[1]]))
                continue
            lead, *others = variants
            if kind == "helper":
                args, kwargs = GET_CALLS[op[2]]
                kwargs = {k: v for k, v in kwargs.items() if k != "skip_cache"}  # a call's option, not a helper's
                mark = len(lead.source.log)
                expected = await lead.helper(op[1], "get", args, kwargs)
                for variant in others:
                    got = await variant.helper(op[1], "get", args, kwargs)
                    assert same_value(got, expected), (variant.how, op, got, expected)
                    assert variant.source.log == lead.source.log, (variant.how, op, variant.source.log[mark:])
                    assert variant.state() == lead.state(), (variant.how, op)
                continue
            args, kwargs = (GET_CALLS if kind == "get" else COUNT_CALLS)[op[1]]
            mark = len(lead.source.log)
            expected = await lead.call(kind, args, kwargs)
            for variant in others:
                got = await variant.call(kind, args, kwargs)
                assert same_value(got, expected), (variant.how, op, got, expected)
                assert variant.source.log == lead.source.log, (variant.how, op, variant.source.log[mark:])
                assert variant.state() == lead.state(), (variant.how, op)

    try:
        asyncio.run(run())
    finally:
        for variant in variants:
            variant.cache.close()


def test_the_variants_take_the_paths_they_are_named_after() -> None:
    """H1 is the lean binding; through the class, a method binds through wrapt (H2)."""
    variant = Variant("instance", FakeClock(), {})
    assert isinstance(variant.target.get, BoundCached)
    assert not isinstance(Users.get, BoundCached)
    assert isinstance(Users.get, BoundCachedFunction)
    assert asyncio.iscoroutinefunction(AsyncUsers.get.__wrapped__)


def test_a_disabled_action_gets_its_keyword_arguments_on_every_path() -> None:
    """The fault the review planted in H1 (``fn(instance, *args)``): ``count(partition=...)`` ran unfiltered."""
    for how in HOWS:
        variant = Variant(how, FakeClock(), {"count": False})
        call = {"partition": "by_region", "partition_values": {"region": "eu"}}
        got = asyncio.run(variant.call("count", (), call))
        assert got == ["by_region", {"region": "eu"}, None, 0], how
        assert variant.source.log == [("count", "by_region", {"region": "eu"}, None)], how
