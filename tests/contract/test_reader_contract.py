"""Every driver's read bodies against the generic one (``Driver.reader``: a get and a plain decode), on real backends.

For each driver of the contract suite (x key prefix), five caches over five drivers of that kind run one
script of writes, corruptions, deletions and time passing. Each cache reads with one body:

* ``installed``: the driver's own reader (``driver.reader()``: the memory driver's fused reader, R2; the tiered
  driver's, D1 with a memory tier's decoded copies; else the generic body);
* ``async``: ``await cache._aread`` (R3: ``driver.aget``, native or on cachekit's executor);
* ``many``: ``cache.get_many([key])`` (R4);
* ``recheck``: ``cache._quiet_read`` (the single-flight re-check; it counts no hit or miss);
* ``generic``: ``Driver.reader``, the generic body with the plain codec decode: the reference.

Every read must give the reference's value, and every cache must end each step with the reference's counters
and stored keys (a corrupt entry is dropped by all of them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachekit import MISSING, Cache
from cachekit.codecs import Codec
from cachekit.drivers.base import Driver
from tests.conftest import FakeClock, same_value
from tests.contract.conftest import Harness, _build

BODIES = ("installed", "async", "many", "recheck", "generic")
SCRIPT: list[tuple[Any, ...]] = [
    ("set", "a", {"x": [1, 2.5], "t": ("p", None)}, None),
    # 30 s: a Redis TTL runs on real time, and a loaded machine took over 5 s between this set and the twins'
    # reads of "absent" (the reference's "b" had expired in Redis, an async twin's not yet)
    ("set", "b", "short", 30),
    ("read", "a"),
    ("read", "a"),
    ("read", "a"),  # a memory driver keeps a decoded value at an entry's second hit: this one is its copy
    ("read", "b"),
    ("envelope", "e", {"kept": [1]}, 5),  # stored with no TTL of the driver's, an envelope deadline in 5 s
    ("read", "e"),
    ("read", "e"),
    ("read", "absent"),
    ("corrupt", "c", b"garbage"),
    ("read", "c"),
    ("read", "c"),
    ("corrupt", "d", "bad-payload"),
    ("read", "d"),
    ("advance", 31),
    ("read", "b"),
    ("read", "e"),  # past the envelope's deadline: a miss, also from a value kept at an earlier hit
    ("delete", "a"),
    ("read", "a"),
    ("set", "a", [1, {"y": True}], 60),
    ("read", "a"),
    ("read", "a"),
]


def bad_payload() -> bytes:
    """A good header and CRC over a payload that is no msgpack: a CorruptEntryError after the checks."""
    good = Codec(compression=None).encode(1, None)
    return good[:-5] + b"\xc1" + good[-4:]


@pytest.fixture
def twins(
    request: pytest.FixtureRequest, harness: Harness, driver_name: str, key_prefix: str, clock: FakeClock,
    tmp_path: Path,
) -> Iterator[dict[str, Cache]]:  # fmt: skip
    built = {"installed": harness.driver}
    for number, body in enumerate(BODIES[1:], start=1):
        twin = _build(driver_name, f"{key_prefix}twin{number}/", clock, tmp_path / f"twin{number}",
                      request.getfixturevalue)  # fmt: skip
        built[body] = twin.driver
    caches = {body: Cache(driver, namespace="reader", ttl=60, clock=clock) for body, driver in built.items()}
    yield caches
    for body, driver in built.items():
        if body != "installed":  # the harness closes its own
            with contextlib.suppress(Exception):
                driver.clear()
            driver.close()


def read(body: str, cache: Cache, key: str) -> Any:
    full = cache._full_key(key)
    if body == "installed":
        return cache._read(full)
    if body == "async":
        return asyncio.run(cache._aread(full))
    if body == "many":
        return cache.get_many([key]).get(key, MISSING)
    if body == "recheck":
        hits, misses = cache.hits, cache.misses
        value = cache._quiet_read(full)
        assert (cache.hits, cache.misses) == (hits, misses)
        return value
    return cache._reader(Driver.reader)(full)  # the generic body with the plain decode


def state(cache: Cache) -> tuple[int, int, int, list[str]]:
    return cache.hits, cache.misses, cache.errors, sorted(cache.driver.keys(cache.prefix))


def test_every_read_body_reads_what_the_generic_body_reads(twins: dict[str, Cache], clock: FakeClock) -> None:
    reference = twins["generic"]
    for op in SCRIPT:
        kind = op[0]
        if kind == "advance":
            clock.advance(op[1])
            continue
        if kind != "read":
            for cache in twins.values():
                if kind == "set":
                    assert cache.set(op[1], op[2], ttl=op[3])
                elif kind == "delete":
                    cache.delete(op[1])
                elif kind == "envelope":
                    full = cache._full_key(op[1])
                    blob = op[2] if cache.codec is None else cache.codec.encode(op[2], op[3], full)
                    cache.driver.set(full, blob, None)
                else:
                    blob = bad_payload() if op[2] == "bad-payload" else op[2]
                    cache.driver.set(cache._full_key(op[1]), blob, None)
            continue
        expected = read("generic", reference, op[1])
        for body, cache in twins.items():
            if body == "generic":
                continue
            got = read(body, cache, op[1])
            assert (got is MISSING) == (expected is MISSING), (body, op, got, expected)
            assert same_value(got, expected), (body, op, got, expected)
            if body == "recheck":  # no hit or miss of its own: take the reference's before comparing
                cache.hits, cache.misses = reference.hits, reference.misses
            assert state(cache) == state(reference), (body, op)
    assert reference.hits >= 5  # the script did hit, miss and meet corrupt entries
    assert reference.errors == 2


def test_the_twins_are_distinct_drivers(twins: dict[str, Cache]) -> None:
    drivers: list[Driver] = [cache.driver for cache in twins.values()]
    assert len({id(driver) for driver in drivers}) == len(BODIES)
    twins["installed"].set("only-here", 1)
    assert [cache.get("only-here") for cache in twins.values()] == [1, None, None, None, None]


def test_every_reader_reads_through_the_get_it_is_given(twins: dict[str, Cache]) -> None:
    """A generation store may wrap ``get`` (Redis: a look at its notification buffer before each read, so a bump
    is heard at the next read): every driver's reader must read through the ``get`` it is handed."""
    cache = twins["installed"]
    cache.set("g", {"v": 1})
    seen: list[str] = []

    def counting(key: str) -> Any:
        seen.append(key)
        return cache.driver.get(key)

    failures: list[Exception] = []
    reader = cache.driver.reader(cache._reads, lambda key, exc: failures.append(exc), cache._decode,
                                 decode_at=cache._decode_at, get=counting)  # fmt: skip
    full = cache._full_key("g")
    assert same_value(reader(full), {"v": 1})
    assert seen == [full]
    assert not failures
