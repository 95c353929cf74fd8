"""The freshness policies (issue 21) through a sync read and an ``async def`` read, operation by operation.

:mod:`cachekit._freshness` has a sync and an async twin of every step after a miss (``after_miss``/``aafter_miss``,
``_refresh``/``_arefresh``, ``_load_and_store``/``_aload_and_store``); only the decision (``_decide``) and the
count (``_count_served``) are shared. Hypothesis draws a sequence of reads, writes, clock moves, a source that
fails or not and drains of the background refreshes; a sync repository and an async one, each over its own cache
of the same driver kind and a clock of its own, run it. Every read must serve the same version (or raise the same
exception type), and after every step the freshness counters and the number of source loads must be equal.

To make the two runs comparable step by step, nothing is left to timing: the clock is a :class:`FakeClock` that a
load moves by :data:`LOAD_SECONDS` (so the load time XFetch draws from is the same in both runs), XFetch's random
numbers come from one seed per run, and a background refresh waits at the source until the next ``drain``
step; a read that started one returns only once the refresh has reached the source (its put-back written) or
finished.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import types
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import cachekit._freshness as freshness
from cachekit import Cache, cached, invalidates
from tests.conftest import FakeClock

TTL = 60.0
LOAD_SECONDS = 2.0  # what one load costs on the fake clock: XFetch's delta
HELD = 5.0  # at most this long (real seconds) for a refresh to reach the source, or for a drain
IDS = st.sampled_from(["a", "b"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("read"), IDS),
        st.tuples(st.just("write"), IDS),
        st.tuples(st.just("advance"), st.sampled_from([1.0, 5.0, 30.0, 58.0, 61.0, 100.0])),
        st.tuples(st.just("fail"), st.booleans()),
        st.tuples(st.just("drain")),
    ),
    max_size=25,
)
POLICIES = st.fixed_dictionaries({
    "stale_while_revalidate": st.sampled_from([0.0, 30.0]),
    "stale_if_error": st.sampled_from([0.0, 120.0]),
    "early_refresh": st.booleans(),
}).filter(lambda policy: any(policy.values()))  # fmt: skip
ALL_ON = {"stale_while_revalidate": 30.0, "stale_if_error": 120.0, "early_refresh": True}
# Every counter moves (with seed 2): a stale read whose refresh is held while a write lands and the source fails
# (a failed refresh; the read after it has no record), a stale value on error, XFetch's early refresh.
EVERY_COUNTER = [("read", "a"), ("advance", 61.0), ("read", "a"), ("write", "a"), ("fail", True), ("drain",),
                 ("read", "a"), ("fail", False), ("read", "a"), ("advance", 100.0), ("fail", True), ("read", "a"),
                 ("fail", False), ("read", "a"), ("advance", 58.0), ("read", "a"), ("drain",),
                 ("read", "a")]  # fmt: skip
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Source:
    """Versioned rows per id; ``fail`` makes loads raise; a load in a background refresh waits for ``gate``."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.versions = {"a": 1, "b": 1}
        self.fail = False
        self.loads = 0
        self.held = 0  # refreshes waiting at the gate
        self.lock = threading.Lock()
        self.gate = threading.Event()

    def row(self, id: str) -> dict[str, Any]:
        self.loads += 1
        self.clock.advance(LOAD_SECONDS)
        if self.fail:
            raise RuntimeError("the database is down")
        return {"id": id, "version": self.versions[id]}

    def holding(self, delta: int) -> None:
        with self.lock:
            self.held += delta

    def hold(self) -> None:
        """Wait (in a refresh thread) until the next drain."""
        self.holding(1)
        try:
            assert self.gate.wait(HELD), "a held refresh was never released"
        finally:
            self.holding(-1)

    async def ahold(self) -> None:
        """Wait (in a refresh task) until the next drain, the loop free meanwhile."""
        self.holding(1)
        try:
            deadline = time.monotonic() + HELD
            while not self.gate.is_set():
                assert time.monotonic() < deadline, "a held refresh was never released"
                await asyncio.sleep(0.001)
        finally:
            self.holding(-1)


def _in_refresh_thread() -> bool:
    return threading.current_thread().name.startswith("cachekit-refresh")


def sync_repo(cache: Cache, source: Source) -> Any:
    class Users:
        name = "users"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get")
        def get(self, id: str) -> dict[str, Any]:
            if _in_refresh_thread():
                source.hold()
            return source.row(id)

        @invalidates("update")
        def update(self, id: str) -> None:
            source.versions[id] += 1

    return Users()


def async_repo(cache: Cache, source: Source) -> Any:
    class Users:
        name = "users"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get")
        async def get(self, id: str) -> dict[str, Any]:
            if asyncio.current_task() in cache._fresh.tasks:  # a background refresh
                await source.ahold()
            return source.row(id)

        @invalidates("update")
        async def update(self, id: str) -> None:
            source.versions[id] += 1

    return Users()


def _settled(cache: Cache, source: Source) -> bool:
    """Every refresh started has reached the source (and waits there) or is over."""
    with cache._fresh.lock, source.lock:
        return len(cache._fresh.refreshing) == source.held


class Run:
    """One side of the comparison: a cache, its clock and source, and what each step gave."""

    def __init__(self, kind: str, tmp: Path, policy: dict[str, Any], seed: int) -> None:
        self.clock = FakeClock()
        self.source = Source(self.clock)
        namespace = f"fd-{uuid.uuid4().hex[:8]}"
        config = {"directory": str(tmp / namespace)} if kind == "filesystem" else {}
        self.cache = Cache(kind, namespace=namespace, clock=self.clock, ttl=TTL, config=config,
                           method_policies={"get": policy})
        self.random = random.Random(seed).random
        self.trace: list[Any] = []

    def record(self, served: Any) -> None:
        self.trace.append((served, self.cache._fresh.snapshot(), self.source.loads))

    def change(self, op: tuple[Any, ...]) -> bool:
        """Apply a step that reads nothing; whether it was one."""
        if op[0] == "advance":
            self.clock.advance(op[1])
        elif op[0] == "fail":
            self.source.fail = op[1]
        else:
            return False
        return True


async def play(run: Run, ops: list[tuple[Any, ...]], read: Callable[[str], Awaitable[Any]],
               write: Callable[[str], Awaitable[None]], drain: Callable[[], Awaitable[bool]],
               close: Callable[[], Awaitable[None]]) -> None:
    """Run ``ops`` through one side's ``read``, ``write``, ``drain`` (whether no refresh is left) and ``close``,
    recording each step. The sync side's calls run on the loop's thread too: its refreshes run in cachekit's pool
    whatever the thread, and both sides wait for them the same way."""
    try:
        for op in ops:
            served: Any = None
            if run.change(op):
                pass
            elif op[0] == "read":
                try:
                    served = ("version", (await read(op[1]))["version"])
                except Exception as exc:
                    served = ("raised", type(exc).__name__)
                deadline = time.monotonic() + HELD
                while not _settled(run.cache, run.source) and time.monotonic() < deadline:
                    await asyncio.sleep(0.001)
            elif op[0] == "write":
                await write(op[1])
            else:
                run.source.gate.set()
                assert await drain()
                run.source.gate.clear()
            run.record(served)
    finally:
        run.source.gate.set()
        await drain()
        await close()


def run_sync(run: Run, ops: list[tuple[Any, ...]]) -> None:
    """``ops`` through a sync repository (sync reads, refreshes in cachekit's thread pool)."""
    repo, fresh = sync_repo(run.cache, run.source), run.cache._fresh

    async def read(id: str) -> Any:
        return repo.get(id)

    async def write(id: str) -> None:
        repo.update(id)

    async def drain() -> bool:
        return fresh.drain(HELD)

    async def close() -> None:
        run.cache.close()

    asyncio.run(play(run, ops, read, write, drain, close))


def run_async(run: Run, ops: list[tuple[Any, ...]]) -> None:
    """``ops`` through an async repository (``async def`` reads, refreshes as tasks on the loop)."""
    repo, fresh = async_repo(run.cache, run.source), run.cache._fresh

    async def drain() -> bool:
        await fresh.adrain(HELD)
        return not fresh.refreshing

    asyncio.run(play(run, ops, repo.get, repo.update, drain, run.cache.aclose))


@pytest.fixture(params=["memory", "filesystem"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def each_run_draws_its_own(monkeypatch: pytest.MonkeyPatch) -> Callable[[Run], None]:
    """XFetch's random numbers from the run's own seeded stream, and its load time from the run's fake clock."""

    def use(run: Run) -> None:
        monkeypatch.setattr(freshness, "_random", run.random)
        monkeypatch.setattr(freshness, "time", types.SimpleNamespace(
            perf_counter=run.clock, monotonic=time.monotonic, sleep=time.sleep))

    return use


@example(policy=ALL_ON, ops=EVERY_COUNTER, seed=2)
@example(policy={"stale_while_revalidate": 0.0, "stale_if_error": 120.0, "early_refresh": False},
         ops=[("read", "b"), ("advance", 61.0), ("fail", True), ("read", "b"), ("read", "b"), ("advance", 100.0),
              ("read", "b")], seed=7)  # fmt: skip
@given(policy=POLICIES, ops=OPS, seed=st.integers(0, 2**32 - 1))
@SETTINGS
def test_sync_and_async_reads_serve_and_count_alike(
    kind: str, tmp_path: Path, each_run_draws_its_own: Callable[[Run], None], policy: dict[str, Any],
    ops: list[tuple[Any, ...]], seed: int,
) -> None:
    sync = Run(kind, tmp_path, policy, seed)
    each_run_draws_its_own(sync)
    run_sync(sync, ops)
    twin = Run(kind, tmp_path, policy, seed)
    each_run_draws_its_own(twin)
    run_async(twin, ops)
    for step, (op, left, right) in enumerate(zip(ops, sync.trace, twin.trace, strict=True)):
        assert left == right, f"step {step} {op}: sync {left} != async {right} (steps: {ops[:step + 1]})"


def test_the_examples_exercise_every_policy(
    tmp_path: Path, each_run_draws_its_own: Callable[[Run], None]
) -> None:
    """The first explicit example reaches each counter (so the comparison is not of zeros only)."""
    run = Run("memory", tmp_path, ALL_ON, 2)
    each_run_draws_its_own(run)
    run_sync(run, EVERY_COUNTER)
    (counts,) = run.trace[-1][1].values()
    assert all(counts.values()), counts
    assert ("raised", "RuntimeError") in [served for served, _, _ in run.trace]
