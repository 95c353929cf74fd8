"""Memo slots of keyword calls (issue 22, item 3): a slot is a cache of the rendered key, so it must never be
shared by two calls whose keys differ.

The calls go through the wrapt path (``CachedState.__call__``, the plugin's reads): with the namespace and the
resource fixed at decoration a keyword-only call's slot is its packed arguments in the state's own memo
(``CachedState.packed_memo``), otherwise ``(state, name, packed)`` in the namespace's memo. Either way the key a
call reads must be the key :meth:`cache_key` renders the long way round (no memo), for every argument: ``1``,
``True``, ``1.0`` and ``Decimal(1)`` are equal in Python and a ``str`` subclass may equal a ``str``, yet their
keys differ (see :func:`cachekit.keys.stable_hash`); dict order changes the slot, never the key.
"""

from __future__ import annotations

import itertools
import warnings
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachekit import Cache, cached
from cachekit._memo import PACKED_LIMIT
from cachekit.errors import UncacheableValueWarning

_names = itertools.count()


class FoldedStr(str):
    """Equal to any str that matches case-insensitively (and hashed so): ``FoldedStr("R1") == "r1"``."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.lower() == other.lower()

    def __hash__(self) -> int:
        return hash(self.lower())


_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([2**64, -(2**63) - 1]),  # past msgpack's ints: frozen instead of packed
    st.sampled_from([0.0, 1.0, -1.0, 0.5]),
    st.sampled_from([Decimal(0), Decimal(1), Decimal("1.0")]),
    st.sampled_from(["", "1", "r1", "R1", "True", "eu"]),
    st.sampled_from(["r1", "R1", "1"]).map(FoldedStr),
)
_KEYS = st.one_of(st.sampled_from(["region", "Region", "1", "n"]), st.integers(0, 1), st.booleans())
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=2).map(tuple),
        st.dictionaries(_KEYS, inner, max_size=3),
    ),
    max_leaves=6,
)
#: Keyword-only calls, with their keywords in any order (the order changes the slot, never the key).
_CALLS = st.lists(
    st.dictionaries(st.sampled_from(["partition", "partition_values", "limit"]), _VALUES, max_size=3),
    min_size=2,
    max_size=6,
)


def _fingerprint(kwargs: dict[str, Any]) -> str:
    """The arguments with every value's exact type: what a load of this call returns."""

    def typed(value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ",".join(f"{typed(k)}:{typed(v)}" for k, v in value.items()) + "}"
        if isinstance(value, (list, tuple)):
            return type(value).__name__ + "[" + ",".join(typed(v) for v in value) + "]"
        return f"{type(value).__name__}({value!r})"

    return typed(kwargs)


class Items:
    """A resource whose ``count`` the tests wrap as the plugin does (a bound method, ``cached(...)(method)``)."""

    name = "items"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    def count(self, partition: Any = None, partition_values: Any = None, limit: Any = None) -> str:
        return _fingerprint({"partition": partition, "partition_values": partition_values, "limit": limit})


def _check_calls(read: Any, calls: list[dict[str, Any]]) -> None:
    """Each call returns what its own key holds: its load, or the load of an earlier call with the same key."""
    loaded: dict[str, str] = {}
    for kwargs in calls * 2:  # the second round hits the memo slots the first one stored
        own = _fingerprint({"partition": kwargs.get("partition"), "partition_values": kwargs.get("partition_values"),
                            "limit": kwargs.get("limit")})
        try:
            key = read.cache_key(**kwargs)  # rendered the long way round (no memo)
        except Exception:  # no key (partition values that do not sort): the call runs uncached, with a warning
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UncacheableValueWarning)
                assert read(**kwargs) == own, kwargs
            continue
        assert read(**kwargs) == loaded.setdefault(key, own), (kwargs, key)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CALLS)
def test_a_packed_slot_in_the_states_own_memo_reads_the_key_of_its_call(calls: list[dict[str, Any]]) -> None:
    cache = Cache(driver="memory", namespace=f"slots{next(_names)}")
    items = Items(cache)
    read = cached(action="count", cache=cache, resource="items")(items.count)  # the plugin's wrapper
    assert read._self_state.packed_memo is not None
    _check_calls(read, calls)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_CALLS)
def test_a_packed_slot_in_the_namespaces_memo_reads_the_key_of_its_call(calls: list[dict[str, Any]]) -> None:
    cache = Cache(driver="memory", namespace=f"slots{next(_names)}")
    read = cached(action="count", cache=cache)(Items(cache).count)  # the resource from the instance: tuple slots
    assert read._self_state.packed_memo is None
    _check_calls(read, calls)


def test_one_true_one_point_oh_a_decimal_and_a_folded_str_never_share_a_slot() -> None:
    cache = Cache(driver="memory", namespace="slots-fixed")
    read = cached(action="count", cache=cache, resource="items")(Items(cache).count)
    values = [{"n": 1}, {"n": True}, {"n": 1.0}, {"n": Decimal(1)}, {"n": "1"}, {"n": FoldedStr("1")}, {"n": None}]
    _check_calls(read, [{"partition": "p", "partition_values": v} for v in values])
    keys = {read.cache_key(partition="p", partition_values=v) for v in values}
    assert len(keys) == 5  # 1 and 1.0 are one key, as are "1" and FoldedStr("1"); True and Decimal(1) differ
    # dict order: two slots, one key (and one load)
    first = read(partition="p", partition_values={"a": 1, "b": 2})
    assert read(partition_values={"b": 2, "a": 1}, partition="p") == first


def test_a_keyword_only_call_is_memoized_in_its_states_own_memo_only_when_namespace_and_resource_are_fixed() -> None:
    cache = Cache(driver="memory", namespace="slots-own")
    read = cached(action="count", cache=cache, resource="items")(Items(cache).count)
    state = read._self_state
    read(partition="by_region", partition_values={"region": "r1"})
    assert len(state.packed_memo) == 1
    assert len(cache._key_memo) == 0
    assert read(partition="by_region", partition_values={"region": "r1"}) == read.uncached(
        partition="by_region", partition_values={"region": "r1"})
    big = {f"k{i}": "v" * 20 for i in range(100)}  # packs to over PACKED_LIMIT bytes: never memoized
    assert read(partition_values=big) == read(partition_values=big)
    assert len(state.packed_memo) == 1
    assert all(len(slot) <= PACKED_LIMIT for slot in state.packed_memo)
    query = cached(action="query", cache=cache, resource="items")(Items(cache).count)  # a state of its own
    assert query(partition="by_region", partition_values={"region": "r1"}) is not None
    assert cache.get(query.cache_key(partition="by_region", partition_values={"region": "r1"})) is not None
    other = Cache(driver="memory", namespace="slots-other")
    from_instance = cached(action="count", cache=other)(Items(other).count)  # named by its instance
    from_instance(partition="by_region", partition_values={"region": "r1"})
    assert from_instance._self_state.packed_memo is None
    assert len(other._key_memo) == 1


class _Counted:
    """A classmethod read: one state, and a namespace per subclass (its ``cache``)."""

    cache: Cache

    @cached(action="count", resource="counted")
    @classmethod
    def count(cls, *, region: str = "") -> str:
        return f"{cls.__name__}:{region}"


class _First(_Counted):
    cache = Cache(driver="memory", namespace="slots-first")


class _Second(_Counted):
    cache = Cache(driver="memory", namespace="slots-second")


def test_a_state_whose_namespace_comes_with_each_call_keeps_its_slots_in_each_namespace() -> None:
    assert _First.count(region="r1") == "_First:r1"
    assert _Second.count(region="r1") == "_Second:r1"  # a shared slot would hand it slots-first's key
    assert _Second.cache.get(_Second.count.cache_key(region="r1")) == "_Second:r1"
    assert _First.count(region="r1") == "_First:r1"
