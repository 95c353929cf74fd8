"""The namespace's copies of "read one key", each against the generic body (``Cache._read``, R1).

Like ``test_memory_reader.py`` (the memory driver's fused reader, R2), each test drives two twins through the
same operations with the same fake clock: one reads with the copy under test, the other with the generic
body. Every read must give the same value (same types all the way down), and the twins must end every step
with the same counters, errors and stored keys (a corrupt entry is dropped by both or by neither).

* R3: ``Cache._aread`` (``await driver.aget``, async ``def`` reads of blocking drivers) against R1;
* R4: ``Cache.get_many`` (``Cache._decoded``) against ``Cache.get``, and the single-flight re-check
  (``_quiet_read``) against R1;
* R5-R7: an observed cache (metrics on, or hit/miss listeners: the wrappers of ``cachekit._instrument``)
  against an unobserved twin, and the per-key metric counters and events against the namespace's counters;
* R3/R4 over tiers: ``Cache.aget`` and ``get_many`` against the tiered driver's own reader (the memory tier's
  decoded copies: same values, counters and kept values);
* D1: the tiered driver's L1 bypass (``TieredDriver.get``) against its generic path (``get_with_expiry``).

The names (R1, R3 ...) are those of the architecture review (``docs/architecture.md``, "Read paths and their
differential tests"). ``tests/bench/mutants.py`` plants one-line faults in these copies and checks that these
tests catch them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cachekit import MISSING, Cache
from cachekit._instrument import Instrumentation
from cachekit._series import AGGREGATES
from cachekit._types import Missing
from cachekit.breaker import CircuitBreaker
from cachekit.drivers.base import Driver
from cachekit.drivers.filesystem import FilesystemDriver
from cachekit.drivers.memory import MemoryDriver
from cachekit.drivers.tiered import Tier, TieredDriver
from cachekit.events import CacheEvent
from tests.conftest import same_value
from tests.unit.test_decoded_copies import vandalize
from tests.unit.test_memory_reader import VALUES, BreakableClock, bad_payload

KEYS = st.sampled_from(["a", "b", "c", "d"])
STEPS = st.one_of(
    st.tuples(st.just("set"), KEYS, VALUES, st.sampled_from([None, 1.0, 5.0])),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 1.0, 3.0])),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("corrupt"), KEYS, st.sampled_from([b"garbage", b"", "bad-payload"])),
    st.tuples(st.just("clock"), st.booleans()),
)
READ = st.tuples(st.just("read"), KEYS)
OPS = st.lists(st.one_of(STEPS, READ, READ), max_size=40)
# Always tried first, whatever hypothesis draws: a hit, a miss, a corrupt entry read twice, an envelope expiry.
BASICS = [("set", "a", [1], 1.0), ("read", "a"), ("read", "b"), ("corrupt", "c", b"garbage"), ("read", "c"),
          ("read", "c"), ("advance", 3.0), ("read", "a")]  # fmt: skip
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- twins -------------------------------------------------------------------------------------------------


def build_driver(kind: str, clock: BreakableClock, directory: Path, l1_size: int = 2) -> Driver:
    """A fresh driver of ``kind`` on ``clock`` (directories under ``directory``; a tiered L1 of ``l1_size``)."""
    if kind == "memory":
        return MemoryDriver(clock=clock, max_size=3)
    if kind == "filesystem":
        return FilesystemDriver(directory=directory / "fs", clock=clock)
    if kind == "tiered":  # a memory L1 (decoded copies on its hits) over a directory
        l2 = FilesystemDriver(directory=directory / "l2", clock=clock)
        # The tiers' breakers on the fake clock too: on real time a loaded machine reopens the twins' breakers at
        # different steps, and their counts part for that reason alone.
        def breaker(name: str) -> CircuitBreaker:
            return CircuitBreaker(name, clock=lambda: clock.now)

        return TieredDriver([Tier(MemoryDriver(clock=clock, max_size=l1_size), breaker=breaker("L1")),
                             Tier(l2, breaker=breaker("L2"))], clock=clock)  # fmt: skip
    raise AssertionError(kind)


class Drivers:
    """The two drivers of a test, built once per test: opening a directory costs far more than an example.

    Each example takes a namespace of its own on them (:class:`Twins`), so examples never see each other's
    entries; both drivers always get the same operations, so they stay alike.
    """

    def __init__(self, kind: str, tmp: Path, l1_size: int = 2) -> None:
        self.kind, self.tmp = kind, tmp
        self.clock = BreakableClock()
        self.pair = (build_driver(kind, self.clock, tmp / "fast", l1_size),
                     build_driver(kind, self.clock, tmp / "slow", l1_size))  # fmt: skip
        self.examples = 0

    def twins(self, label: str = "rp") -> Twins:
        self.examples += 1
        self.clock.broken = False
        if self.kind == "memory":  # cheap: a fresh pair, so LRU order and evictions start alike
            self.pair = (build_driver("memory", self.clock, self.tmp), build_driver("memory", self.clock, self.tmp))
        return Twins(self.pair, self.clock, f"{label}{self.examples}")

    def close(self) -> None:
        self.clock.broken = False
        for driver in self.pair:
            driver.close()


@pytest.fixture(params=["memory", "filesystem", "tiered"])
def drivers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Drivers]:
    built = Drivers(str(request.param), tmp_path)
    yield built
    built.close()


class Twins:
    """Two caches with one namespace over the two drivers, one pair per hypothesis example."""

    def __init__(self, pair: tuple[Driver, Driver], clock: BreakableClock, namespace: str) -> None:
        self.clock = clock
        self.fast = Cache(pair[0], namespace=namespace, clock=clock)
        self.slow = Cache(pair[1], namespace=namespace, clock=clock)

    def step(self, op: tuple[Any, ...]) -> bool:
        """Apply a step that is not a read to both; ``False`` for a read (the caller compares it)."""
        kind = op[0]
        if kind == "advance":
            self.clock.advance(op[1])
        elif kind == "clock":
            self.clock.broken = op[1]
        elif kind == "read":
            return False
        elif not self.clock.broken:  # a write with no clock is not what these tests compare
            for cache in (self.fast, self.slow):
                full = cache._full_key(op[1])
                if kind == "set":
                    cache.set(op[1], op[2], ttl=op[3])
                elif kind == "delete":
                    cache.delete(op[1])
                else:
                    cache.driver.set(full, bad_payload() if op[2] == "bad-payload" else op[2], None)
        return True

    def stored(self, cache: Cache) -> list[str]:
        """The keys ``cache``'s driver holds (read with a working clock)."""
        broken, self.clock.broken = self.clock.broken, False
        try:
            return sorted(cache.driver.keys(cache.prefix))
        finally:
            self.clock.broken = broken

    def check(self, op: Any, got: Any, expected: Any) -> None:
        """Same value, same counters, same stored keys."""
        assert (got is MISSING) == (expected is MISSING), (op, got, expected)
        assert same_value(got, expected), (op, got, expected)
        assert counters(self.fast) == counters(self.slow), op
        assert self.stored(self.fast) == self.stored(self.slow), op

    def close(self) -> None:
        """Stop the generation views; the drivers belong to :class:`Drivers`."""
        self.clock.broken = False
        for cache in (self.fast, self.slow):
            cache._gens.close()


def counters(cache: Cache) -> tuple[int, int, int, int]:
    return cache.hits, cache.misses, cache.errors, cache.sets


def generic(cache: Cache, key: str) -> Any:
    """R1: the generic body (``Driver.reader``), whatever the driver's own reader is."""
    return cache._reader(Driver.reader)(key)


# -- R3: the async read ------------------------------------------------------------------------------------


@SETTINGS
@given(ops=OPS)
@example(ops=BASICS)
def test_the_async_read_reads_what_the_generic_path_reads(drivers: Drivers, ops: list[tuple[Any, ...]]) -> None:
    twins = drivers.twins()

    async def run() -> None:
        for op in ops:
            if twins.step(op):
                continue
            got = await twins.fast._aread(twins.fast._full_key(op[1]))
            twins.check(op, got, generic(twins.slow, twins.slow._full_key(op[1])))

    try:
        asyncio.run(run())
    finally:
        twins.close()


# -- R4: get_many and the single-flight re-check -----------------------------------------------------------

MANY = st.tuples(st.just("many"), st.lists(KEYS, unique=True, max_size=4))


@SETTINGS
@given(ops=st.lists(st.one_of(STEPS, MANY, MANY), max_size=40))
@example(ops=[("set", "a", [1], 1.0), ("corrupt", "c", b"garbage"), ("many", ["a", "b", "c"]), ("many", ["c"]),
              ("advance", 3.0), ("many", ["a"])])  # fmt: skip
def test_get_many_finds_what_get_finds(drivers: Drivers, ops: list[tuple[Any, ...]]) -> None:
    twins = drivers.twins()
    try:
        for op in ops:
            if op[0] != "many":
                twins.step(op)
                continue
            if twins.clock.broken:
                # The batch fails as one call (one error, nothing decoded, nothing dropped) where reads of the
                # keys one by one may each fail or not: not a difference of the decoding this test compares.
                continue
            got = twins.fast.get_many(op[1])
            expected = {}
            for key in op[1]:
                value = twins.slow.get(key, MISSING)
                if value is not MISSING:
                    expected[key] = value
            assert list(got) == list(expected), (op, got, expected)
            for key in got:
                assert same_value(got[key], expected[key]), (op, key, got[key], expected[key])
            assert counters(twins.fast) == counters(twins.slow), op
            assert twins.stored(twins.fast) == twins.stored(twins.slow), op
    finally:
        twins.close()


@SETTINGS
@given(ops=OPS)
@example(ops=BASICS)
def test_the_single_flight_recheck_reads_what_the_generic_path_reads(
    drivers: Drivers, ops: list[tuple[Any, ...]]
) -> None:
    """``_quiet_read`` (a leader's re-check before it loads) counts no hit, miss or driver failure (the read
    before it counted those), but counts and drops a corrupt entry as R1 does."""
    twins = drivers.twins()
    try:
        for op in ops:
            if twins.step(op):
                continue
            hits, misses = twins.fast.hits, twins.fast.misses
            got = twins.fast._quiet_read(twins.fast._full_key(op[1]))
            expected = generic(twins.slow, twins.slow._full_key(op[1]))
            assert (twins.fast.hits, twins.fast.misses) == (hits, misses), op
            twins.fast.hits, twins.fast.misses = twins.slow.hits, twins.slow.misses
            if twins.clock.broken:  # a failed driver call is not counted again: the read before the re-check did
                assert twins.fast.errors <= twins.slow.errors, op
                twins.fast.errors = twins.slow.errors
            twins.check(op, got, expected)
    finally:
        twins.close()


# -- R3/R4 over tiers: the memory tier's decoded copies on every path ----------------------------------------


def tier_state(cache: Cache) -> list[Any]:
    """Each tier's counters, and per memory tier what it keeps decoded: the bytes and which entries."""
    driver: Any = cache.driver
    state: list[Any] = [driver._misses]
    for tier in driver._tiers:
        data = getattr(tier.driver, "_data", {})
        kept = (getattr(tier.driver, "kept_bytes", None), [(key, len(entry)) for key, entry in data.items()])
        state.append((tier.hits, tier.misses, tier.errors, tier.skipped, tier.promotions, tier.sets, kept))
    return state


def breakers_closed(cache: Cache) -> bool:
    """Whether every tier's breaker lets calls through (a batch skipped by an open one counts one skip)."""
    driver: Any = cache.driver
    return all(tier.breaker.closed for tier in driver._tiers)


@pytest.fixture
def tiers(tmp_path: Path) -> Iterator[Drivers]:
    built = Drivers("tiered", tmp_path)
    yield built
    built.close()


@pytest.fixture
def roomy_tiers(tmp_path: Path) -> Iterator[Drivers]:
    """Tiers whose L1 never evicts. ``get_many`` asks L1 for every key before it promotes the misses, where reads
    one by one promote each in turn: with a full L1 the two rightly evict different entries (``set c, set a,
    set b, many [c, a]`` over a 2-entry L1), and every later count parts for that reason alone."""
    built = Drivers("tiered", tmp_path, l1_size=10_000)
    yield built
    built.close()


TIER_READS = st.tuples(st.sampled_from(["aget", "many"]), st.lists(KEYS, unique=True, min_size=1, max_size=3))


@SETTINGS
@given(ops=st.lists(st.one_of(STEPS, TIER_READS, TIER_READS), max_size=40))
@example(ops=[("set", "a", {"x": (True, 1.5)}, 5.0), ("aget", ["a"]), ("aget", ["a"]), ("many", ["a", "b"]),
              ("many", ["a"]), ("advance", 6.0), ("aget", ["a"]), ("many", ["a"])])  # fmt: skip
@example(ops=[("set", "a", [1, 2], None), ("many", ["a"]), ("aget", ["a"]), ("aget", ["a"]), ("many", ["a"])])
def test_aget_and_get_many_over_tiers_read_what_the_tiered_reader_reads(
    roomy_tiers: Drivers, ops: list[tuple[Any, ...]]
) -> None:
    """``Cache.aget`` (``_aread``) and ``get_many`` against the tiered driver's reader (``cache._read``, which
    answers a memory tier's hits from the value kept at the entry's first hit): same values (type-exact), same
    counters, the same values kept in the same tier entries, and a mutated result never reaches a later read."""
    twins = roomy_tiers.twins("tr")

    async def read(op: tuple[Any, ...]) -> dict[str, Any]:
        if op[0] == "many":
            return twins.fast.get_many(op[1])
        got = {}
        for key in op[1]:
            value = await twins.fast.aget(key, MISSING)
            if value is not MISSING:
                got[key] = value
        return got

    async def run() -> None:
        for op in ops:
            if op[0] not in ("aget", "many"):
                twins.step(op)
                continue
            # One failed or skipped batch against reads failing (or skipped by an open breaker) one by one.
            if op[0] == "many" and (twins.clock.broken or not breakers_closed(twins.fast)):
                continue
            got = await read(op)
            expected = {}
            for key in op[1]:
                value = twins.slow._read(twins.slow._full_key(key))
                if value is not MISSING:
                    expected[key] = value
            assert list(got) == list(expected), (op, got, expected)
            for key in got:
                assert same_value(got[key], expected[key]), (op, key, got[key], expected[key])
                vandalize(got[key])  # a caller's mutation: later reads must not see it (nor the twin's)
                vandalize(expected[key])
            assert counters(twins.fast) == counters(twins.slow), op
            assert twins.stored(twins.fast) == twins.stored(twins.slow), op
            broken, twins.clock.broken = twins.clock.broken, False
            try:
                assert tier_state(twins.fast) == tier_state(twins.slow), op
            finally:
                twins.clock.broken = broken

    try:
        asyncio.run(run())
    finally:
        twins.close()


# -- D2: the tiered driver's fused L1 reader against the generic body -----------------------------------------

L1_STEPS = st.one_of(
    st.tuples(st.just("quarantine"), KEYS),  # L1 missed an invalidation of the key: it must be replayed first
    st.tuples(st.just("tripped"), KEYS),  # a read while L1's breaker is open (closed again after it)
)


def unfused(driver: Any, counts: Any, failed: Any, decode: Any, *, decode_at: Any = None, get: Any = None,
            trusted: bool = False, deadline_of: Any = None, clock: Any = None) -> Any:
    """What ``TieredDriver.reader`` is without the fused L1 reader: the generic body over ``TieredDriver.get``
    (its L1 bypass) and the tiers' blob decoder (a memory first tier's kept values)."""
    decoded = driver.blob_decoder(decode, decode_at=decode_at, deadline_of=deadline_of, clock=clock)
    return Driver.reader(driver, counts, failed, decode, decode_at=decoded, get=get)


@SETTINGS
@given(ops=st.lists(st.one_of(STEPS, L1_STEPS, READ, READ, READ), max_size=40))
@example(ops=[("set", "a", {"x": [1]}, 5.0), ("read", "a"), ("read", "a"), ("read", "a"), ("advance", 6.0),
              ("read", "a")])  # fmt: skip
# An entry keeps its value at its second hit (issue 22): the fused reader answers from the third.
@example(ops=[("set", "a", [1], None), ("read", "a"), ("read", "a"), ("read", "a"), ("tripped", "a"),
              ("read", "a"), ("quarantine", "a"), ("read", "a"), ("read", "a")])  # fmt: skip
@example(ops=[("set", "a", [1], None), ("read", "a"), ("read", "a"), ("clock", True), ("read", "a"),
              ("clock", False), ("read", "a")])  # fmt: skip
# A fused hit of the older of two L1 entries moves it in L1's LRU order (compared by tier_state).
@example(ops=[("set", "a", [1], None), ("set", "b", [2], None), ("read", "a"), ("read", "a"), ("read", "b"),
              ("read", "a")])  # fmt: skip
def test_the_fused_l1_reader_reads_what_the_generic_body_reads(tiers: Drivers, ops: list[tuple[Any, ...]]) -> None:
    """``TieredDriver.reader`` over a memory first tier (``memory.tier_reader``: an L1 hit of a kept value in one
    frame) against the generic body over the same tiers: same values (type-exact), counters, stored keys, tier
    counters and kept values, whether L1 is idle, quarantined (a missed invalidation) or its breaker open."""
    for driver in tiers.pair:  # the drivers outlive an example: start each with healthy tiers
        for tier in driver._tiers:  # type: ignore[attr-defined]
            tier.breaker.reset()
            tier._pending_prefixes.clear()
            tier._pending_keys.clear()
            tier._collapsed = None
    twins = tiers.twins("l1")
    assert twins.fast._read.__module__ == "cachekit.drivers.memory"  # the copy under test is installed
    firsts = [cache.driver._tiers[0] for cache in (twins.fast, twins.slow)]  # type: ignore[attr-defined]
    try:
        for op in ops:
            if op[0] == "quarantine":
                for cache, first in zip((twins.fast, twins.slow), firsts, strict=True):
                    first.queue(keys=[cache._full_key(op[1])], cause=None)
                continue
            if op[0] != "tripped" and twins.step(op):
                continue
            if op[0] == "tripped":
                for first in firsts:
                    first.breaker.record_failure(RuntimeError("down"), trip=True)
            try:
                got = twins.fast._read(twins.fast._full_key(op[1]))
                expected = twins.slow._reader(unfused)(twins.slow._full_key(op[1]))
            finally:
                if op[0] == "tripped":
                    for first in firsts:
                        first.breaker.reset()
            twins.check(op, got, expected)
            if got is not MISSING:
                vandalize(got)  # a caller's mutation: later reads must not see it
            broken, twins.clock.broken = twins.clock.broken, False
            try:
                assert tier_state(twins.fast) == tier_state(twins.slow), op
            finally:
                twins.clock.broken = broken
    finally:
        twins.close()


# -- R5-R7: observed reads ---------------------------------------------------------------------------------


@pytest.fixture
def _fresh_series() -> Iterator[None]:
    yield
    AGGREGATES.reset()


OBSERVERS = {
    "memory-metrics": ("memory", True, False),  # R6: _in_process_read
    "memory-listeners": ("memory", False, True),  # R5 untimed: _plain_read(histogram=False)
    "filesystem-metrics": ("filesystem", True, False),  # R5 timed: _plain_read(histogram=True)
    "filesystem-listeners": ("filesystem", True, True),
    "tiered-metrics": ("tiered", True, False),  # R7: _tiered_read
    "tiered-listeners": ("tiered", True, True),
}


@pytest.fixture(params=list(OBSERVERS))
def observer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Drivers, bool, bool]]:
    kind, metrics, listen = OBSERVERS[str(request.param)]
    built = Drivers(kind, tmp_path)
    yield built, metrics, listen
    built.close()


def tier_hits(cache: Cache, tiers: list[Any]) -> dict[str, tuple[int, int]]:
    """Per tier: (the tier's own hit count, the hits metrics labelled with it in ``cache``'s namespace)."""
    return {
        tier.name: (tier.hits, sum(c.hits for labels, c in AGGREGATES.counters.items()
                                   if labels[0] == cache.namespace and labels[3] == tier.name))
        for tier in tiers
    }  # fmt: skip


@pytest.mark.usefixtures("_fresh_series")
@SETTINGS
@given(ops=OPS)
@example(ops=BASICS)
def test_an_observed_cache_reads_what_an_unobserved_one_reads(
    observer: tuple[Drivers, bool, bool], ops: list[tuple[Any, ...]]
) -> None:
    """Values, counters and what is stored are those of the unobserved twin; the per-key metric counters and
    the events add up to the namespace's counters (a failed read is an error and a miss to metrics)."""
    drivers, metrics, listen = observer
    twins = drivers.twins("obs")
    events: list[CacheEvent] = []
    hooks = Instrumentation(twins.fast)
    hooks.metrics = metrics
    if listen:
        for name in ("hit", "miss", "error"):
            hooks.listeners[name].append(events.append)
    hooks.install()
    tiers = list(getattr(twins.fast.driver, "_tiers", []))
    try:
        assert "_read" in vars(twins.fast)
        for op in ops:
            if twins.step(op):
                continue
            errors, served = twins.fast.errors, tier_hits(twins.fast, tiers)
            got = twins.fast._read(twins.fast._full_key(op[1]))
            if tiers and got is not MISSING:  # the hit is labelled with the tier that served it
                now = tier_hits(twins.fast, tiers)
                moved = [name for name in now if now[name][0] != served[name][0]]
                assert moved == [name for name in now if now[name][1] != served[name][1]], op
            twins.check(op, got, generic(twins.slow, twins.slow._full_key(op[1])))
            if listen:
                kinds = [event.kind for event in events]
                expected_kinds = ["hit"] if got is not MISSING else ["error"] * (twins.fast.errors - errors) + ["miss"]
                assert kinds == expected_kinds, (op, kinds)
                assert all(event.key == twins.fast._full_key(op[1]) for event in events), op
                events.clear()
        series = [c for labels, c in AGGREGATES.counters.items() if labels[0] == twins.fast.namespace]
        hits, misses, errors = (sum(getattr(c, field) for c in series) for field in ("hits", "misses", "errors"))
        assert (hits, misses, errors) == (
            twins.fast.hits, twins.fast.misses + twins.fast.errors, twins.fast.errors
        )  # fmt: skip
    finally:
        hooks.uninstall()
        twins.close()


# -- D1: the tiered driver's L1 bypass ---------------------------------------------------------------------


class FlakyMemory(MemoryDriver):
    """A memory driver whose reads raise while ``down`` is set (an L1 that fails, without a mock)."""

    down = False

    def get(self, key: str) -> Any:
        if self.down:
            raise OSError("L1 is down")
        return super().get(key)

    def get_with_expiry(self, key: str) -> Any:
        if self.down:
            raise OSError("L1 is down")
        return super().get_with_expiry(key)


def tiered_pair(clock: BreakableClock, promote: bool) -> tuple[TieredDriver, TieredDriver]:
    def build() -> TieredDriver:
        tiers = [Tier(FlakyMemory(clock=clock, max_size=2), ttl=2.0), Tier(MemoryDriver(clock=clock), ttl=None),
                 Tier(MemoryDriver(clock=clock))]  # fmt: skip
        return TieredDriver(tiers, clock=clock, promote_on_hit=promote)

    return build(), build()


def tier_report(driver: TieredDriver) -> list[Any]:
    report: list[Any] = [driver._misses]
    for tier in driver._tiers:
        data = tier.driver._data  # type: ignore[attr-defined]
        entries = [(k, v[0], v[1]) for k, v in data.items()]
        report.append((tier.hits, tier.misses, tier.errors, tier.skipped, tier.promotions, tier.sets, entries))
    return report


def the_generic_get(driver: TieredDriver, key: str) -> bytes | Missing:
    """What ``TieredDriver.get`` is without its L1 bypass: every tier through ``get_with_expiry``."""
    found = driver.get_with_expiry(key)
    return found if isinstance(found, Missing) else found[0]


DKEYS = st.sampled_from(["a", "b", "c"])
TIER_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), DKEYS, st.binary(max_size=3), st.sampled_from([None, 1.0, 5.0])),
        st.tuples(st.just("set-at"), st.integers(0, 2), DKEYS, st.binary(max_size=3), st.sampled_from([None, 4.0])),
        st.tuples(st.just("drop-at"), st.integers(0, 2), DKEYS),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 1.5, 3.0])),
        st.tuples(st.just("l1"), st.booleans()),
        st.tuples(st.just("get"), DKEYS),
        st.tuples(st.just("get"), DKEYS),
    ),
    max_size=40,
)


@pytest.mark.parametrize("promote", [True, False])
@settings(max_examples=60, deadline=None)
@given(ops=TIER_OPS)
# A hit of the older of two L1 entries moves it in L1's LRU order, on either path.
@example(ops=[("set", "b", b"1", None), ("set", "a", b"2", None), ("get", "b"), ("set", "c", b"3", None),
              ("get", "b")])  # fmt: skip
# L1 fails until its breaker opens, then answers again during the cool-down: the generic walk skips it.
@example(ops=[("set", "a", b"x", None), ("l1", True), ("get", "a"), ("get", "a"), ("get", "a"), ("get", "a"),
              ("l1", False), ("get", "a"), ("get", "b")])  # fmt: skip
def test_the_l1_bypass_reads_what_the_generic_tier_walk_reads(promote: bool, ops: list[tuple[Any, ...]]) -> None:
    clock = BreakableClock()
    fast, slow = tiered_pair(clock, promote)
    for op in ops:
        kind = op[0]
        for driver in (fast, slow):
            if kind == "set":
                driver.set(op[1], op[2], op[3])
            elif kind == "set-at":
                driver._tiers[op[1]].driver.set(op[2], op[3], op[4])
            elif kind == "drop-at":
                driver._tiers[op[1]].driver.delete(op[2])
            elif kind == "l1":
                driver._tiers[0].driver.down = op[1]  # type: ignore[attr-defined]
        if kind == "advance":
            clock.advance(op[1])
        if kind != "get":
            continue
        got, expected = fast.get(op[1]), the_generic_get(slow, op[1])
        assert got == expected, (op, got, expected)
        assert tier_report(fast) == tier_report(slow), op


# -- the helpers themselves --------------------------------------------------------------------------------


def test_the_twins_compare_what_they_claim(tmp_path: Path) -> None:
    """The comparisons above can fail: a cache that keeps a corrupt entry differs from one that drops it."""
    drivers = Drivers("memory", tmp_path)
    twins = drivers.twins()
    try:
        twins.step(("corrupt", "a", b"garbage"))
        key = twins.slow._full_key("a")
        assert generic(twins.slow, key) is MISSING
        with pytest.raises(AssertionError):
            twins.check(("read", "a"), MISSING, MISSING)  # fast still holds "a" and counted nothing
    finally:
        twins.close()
