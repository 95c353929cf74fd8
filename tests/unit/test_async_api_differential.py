"""The async key/value API of :class:`~cachekit.Cache` against its sync twin, operation by operation.

``aget``, ``aset``, ``aget_many``, ``aset_many`` and ``adelete`` used to live in a mixin of their own, with
copies of the sync bodies that had drifted: ``aset`` skipped the check that keeps hand-written keys out of the
decorated reads' key space, ``aset_many`` passed the "refused" marker of an uncacheable value to the driver
instead of dropping the old entry, and ``aget_many`` counted a corrupt entry as a miss where ``get_many`` counts
an error. Two caches over two drivers get the same operations, one through the async methods and one through
the sync ones; every result, counter and stored key must be the same after every step.
"""

from __future__ import annotations

import asyncio
import functools
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cachekit import MISSING, Cache
from cachekit.errors import ConfigurationError, UncacheableValueWarning
from tests.conftest import same_value
from tests.unit.test_memory_reader import VALUES, bad_payload
from tests.unit.test_read_paths_differential import SETTINGS, Drivers, Twins

KEYS = st.sampled_from(["a", "b", "c", "resource=users/action=get/id=1"])  # the last: a decorated read's key
UNCACHEABLE = st.builds(object)  # no codec serializes it: refused, and the old entry dropped
ANY_VALUE = st.one_of(VALUES, UNCACHEABLE)
TTLS = st.sampled_from([None, 1.0, 5.0])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, ANY_VALUE, TTLS),
        st.tuples(st.just("set_many"), st.dictionaries(KEYS, ANY_VALUE, max_size=3), TTLS),
        st.tuples(st.just("get"), KEYS),
        st.tuples(st.just("get_many"), st.lists(KEYS, max_size=4)),
        st.tuples(st.just("delete"), KEYS),
        st.tuples(st.just("corrupt"), KEYS, st.sampled_from([b"garbage", "bad-payload"])),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 3.0])),
    ),
    max_size=30,
)
BASICS = [("set", "a", [1], 1.0), ("get", "a"), ("corrupt", "b", b"garbage"), ("get_many", ["a", "b", "c"]),
          ("set", "c", 1, None), ("set_many", {"c": object()}, None), ("get", "c"),
          ("set", "resource=users/action=get/id=1", 1, None), ("advance", 3.0), ("get_many", ["a"])]  # fmt: skip


@pytest.fixture(params=["memory", "filesystem", "tiered"])
def drivers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Drivers]:
    built = Drivers(str(request.param), tmp_path)
    yield built
    built.close()


async def _async_op(cache: Cache, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if kind == "set":
        return await cache.aset(op[1], op[2], ttl=op[3])
    if kind == "set_many":
        return await cache.aset_many(op[1], ttl=op[2])
    if kind == "get":
        return await cache.aget(op[1], MISSING)
    if kind == "get_many":
        return await cache.aget_many(op[1])
    return await cache.adelete(op[1])


def _sync_op(cache: Cache, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if kind == "set":
        return cache.set(op[1], op[2], ttl=op[3])
    if kind == "set_many":
        return cache.set_many(op[1], ttl=op[2])
    if kind == "get":
        return cache.get(op[1], MISSING)
    if kind == "get_many":
        return cache.get_many(op[1])
    return cache.delete(op[1])


def _outcome(run: Any) -> tuple[str, Any]:
    """``("ok", result)`` or ``("raised", exception type)``; an uncacheable value's warning is expected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncacheableValueWarning)
        try:
            return "ok", run()
        except ConfigurationError as exc:
            return "raised", type(exc)


def _counters(cache: Cache) -> tuple[int, ...]:
    return cache.hits, cache.misses, cache.errors, cache.sets, cache.deletes


@SETTINGS
@given(ops=OPS)
@example(ops=BASICS)
def test_the_async_api_does_what_the_sync_api_does(drivers: Drivers, ops: list[tuple[Any, ...]]) -> None:
    twins: Twins = drivers.twins("aapi")
    fast, slow = twins.fast, twins.slow  # fast: the async methods; slow: the sync ones

    async def run() -> None:
        for op in ops:
            if op[0] == "advance":
                twins.clock.advance(op[1])
                continue
            if op[0] == "corrupt":
                for cache in (fast, slow):
                    cache.driver.set(cache._full_key(op[1]), bad_payload() if op[2] == "bad-payload" else op[2], None)
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UncacheableValueWarning)
                try:
                    got: tuple[str, Any] = ("ok", await _async_op(fast, op))
                except ConfigurationError as exc:
                    got = ("raised", type(exc))
            expected = _outcome(functools.partial(_sync_op, slow, op))
            assert got[0] == expected[0], (op, got, expected)
            if isinstance(expected[1], dict):
                assert list(got[1]) == list(expected[1]), (op, got, expected)
                for key in expected[1]:
                    assert same_value(got[1][key], expected[1][key]), (op, key)
            else:
                assert same_value(got[1], expected[1]), (op, got, expected)
            assert _counters(fast) == _counters(slow), op
            assert twins.stored(fast) == twins.stored(slow), op

    try:
        asyncio.run(run())
    finally:
        twins.close()
