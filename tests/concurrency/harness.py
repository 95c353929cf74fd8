"""Stale-read harness: versioned values read and written concurrently, by threads or by two processes.

A *stale read* is a read that returns a version older than a write that had completed (returned to its caller)
before the read began. Writers bump a record's version in the source, then the decorated write invalidates;
only when it returns is the version recorded as completed. A reader notes the completed version before it
reads. The loader sleeps a little after reading the source, to widen the window in which a value loaded before
a write could be stored after it. A ``list(limit, offset)`` read is stale when any record it returns is.

``run_threads`` can also take snapshots at given times (``marks``): reads so far and hits of the first tier only
(the L1 of a tiered cache), to compare hit rates per phase of an outage.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cachekit import Cache, cached, invalidates
from tests.servers import RedisServer

LOAD_DELAY = 0.0005


@dataclass
class Outcome:
    """What a run saw."""

    reads: int = 0
    writes: int = 0
    stale: int = 0
    hits: int = 0
    windows: list[float] = field(default_factory=list)  # seconds after the write returned, per stale read
    #: (reads, L1-only hits) at each of ``run_threads``' marks and at the end
    snapshots: list[tuple[int, int]] = field(default_factory=list)

    def l1_rates(self) -> list[float]:
        """L1 hits per read between consecutive snapshots (the phases)."""
        rates, previous = [], (0, 0)
        for reads, hits in self.snapshots:
            rates.append((hits - previous[1]) / max(1, reads - previous[0]))
            previous = (reads, hits)
        return rates

    def p99_window(self) -> float:
        if not self.windows:
            return 0.0
        ordered = sorted(self.windows)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


class Source:
    """Versions per id (a list, or a shared multiprocessing array), and what completed when."""

    def __init__(self, versions: Any, completed: Any, completed_at: Any, lock: Any) -> None:
        self.versions, self.completed, self.completed_at, self.lock = versions, completed, completed_at, lock

    def write(self, index: int) -> int:
        with self.lock:
            self.versions[index] += 1
            return int(self.versions[index])

    def complete(self, index: int, version: int) -> None:
        with self.lock:
            if version > self.completed[index]:
                self.completed[index] = version
                self.completed_at[index] = time.monotonic()

    def required(self, index: int) -> tuple[int, float]:
        with self.lock:
            return int(self.completed[index]), float(self.completed_at[index])


class Records:
    """A repository over a :class:`Source`, cached with ``cache``."""

    name = "records"

    def __init__(self, cache: Cache, source: Source, *, delay: float = LOAD_DELAY, write_delay: float = 0.0) -> None:
        self.cache, self.source = cache, source
        self.delay, self.write_delay = delay, write_delay
        self.loads = 0

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any]:
        self.loads += 1
        version = int(self.source.versions[int(id)])
        time.sleep(self.delay)
        return {"id": id, "version": version}

    @cached(action="list")
    def list(self, limit: int, offset: int) -> list[dict[str, Any]]:
        self.loads += 1
        versions = [int(self.source.versions[i]) for i in range(offset, offset + limit)]
        time.sleep(self.delay)
        return [{"id": str(offset + i), "version": v} for i, v in enumerate(versions)]

    @invalidates("update")
    def update(self, id: str, data: dict[str, Any]) -> None:
        if self.write_delay:
            time.sleep(self.write_delay)
        data["version"] = self.source.write(int(id))


def thread_source(keys: int) -> Source:
    return Source([0] * keys, [0] * keys, [0.0] * keys, threading.Lock())


def read_once(repo: Records, index: int, outcome: Outcome) -> None:
    required, completed_at = repo.source.required(index)
    started = time.monotonic()
    got = repo.get(str(index))["version"]
    outcome.reads += 1
    if got < required:
        outcome.stale += 1
        outcome.windows.append(started - completed_at)


def list_once(repo: Records, offset: int, limit: int, outcome: Outcome) -> None:
    required = [repo.source.required(i) for i in range(offset, offset + limit)]
    started = time.monotonic()
    got = repo.list(limit, offset)
    outcome.reads += 1
    behind = [started - at for (version, at), record in zip(required, got, strict=True) if record["version"] < version]
    if behind:
        outcome.stale += 1
        outcome.windows.append(min(behind))


def l1_hits(cache: Cache) -> int:
    """Hits of the first tier of a tiered cache (all hits of a single driver)."""
    tiers = getattr(cache.driver, "_tiers", None)
    return int(tiers[0].hits) if tiers else int(cache.hits)


def write_once(repo: Records, index: int, outcome: Outcome) -> None:
    data: dict[str, Any] = {}
    repo.update(str(index), data)
    repo.source.complete(index, data["version"])
    outcome.writes += 1


LIST_LIMIT = 20


def run_threads(
    cache: Cache, *, seconds: float, threads: int = 8, keys: int = 200, write_ratio: float = 0.1,
    list_ratio: float = 0.0, max_operations: int = 2_000_000, delay: float = LOAD_DELAY, write_delay: float = 0.0,
    marks: Sequence[float] = (),
) -> Outcome:
    """``threads`` threads doing reads and writes over ``keys`` records for ``seconds`` (bounded by count too).

    ``list_ratio`` of the operations are ``list(LIST_LIMIT, offset)`` reads (offsets a multiple of the limit),
    ``write_ratio`` writes, the rest ``get(id)``. ``delay``/``write_delay``: seconds a source read/write takes.
    ``marks``: seconds after the start at which to snapshot (reads, L1 hits) (see :class:`Outcome`).
    """
    repo = Records(cache, thread_source(keys), delay=delay, write_delay=write_delay)
    outcomes = [Outcome() for _ in range(threads)]
    started = time.monotonic()
    deadline = started + seconds
    per_thread = max_operations // threads
    offsets = range(0, keys - LIST_LIMIT + 1, LIST_LIMIT)

    def work(seed: int, outcome: Outcome) -> None:
        rng = random.Random(seed)
        for _ in range(per_thread):
            if time.monotonic() >= deadline:
                return
            index = rng.randrange(keys)
            dice = rng.random()
            if dice < write_ratio:
                write_once(repo, index, outcome)
            elif dice < write_ratio + list_ratio:
                list_once(repo, rng.choice(offsets), LIST_LIMIT, outcome)
            else:
                read_once(repo, index, outcome)

    workers = [threading.Thread(target=work, args=(i, outcomes[i])) for i in range(threads)]
    for worker in workers:
        worker.start()
    snapshots = []
    for mark in marks:
        wait = started + mark - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        snapshots.append((sum(o.reads for o in outcomes), l1_hits(cache)))
    for worker in workers:
        worker.join(seconds + 60)
    total = Outcome(snapshots=[*snapshots, (sum(o.reads for o in outcomes), l1_hits(cache))])
    for outcome in outcomes:
        total.reads += outcome.reads
        total.writes += outcome.writes
        total.stale += outcome.stale
        total.windows += outcome.windows
    total.hits = cache.hits
    return total


# -- two processes ------------------------------------------------------------------------------------------------


def _build_cache(spec: dict[str, Any]) -> Cache:
    return Cache(**spec)


def _process_main(
    role: str, spec: dict[str, Any], shared: tuple[Any, ...], writes: int, seconds: float, keys: int, queue: Any
) -> None:
    versions, completed, completed_at, lock, start, finished = shared
    source = Source(versions, completed, completed_at, lock)
    cache = _build_cache(spec)
    repo = Records(cache, source)
    outcome = Outcome()
    rng = random.Random(1 if role == "writer" else 2)
    for index in range(keys):  # warm: every record cached in this process before the clock starts
        repo.get(str(index))
    start.wait(30)
    deadline = time.monotonic() + seconds  # a bound only: the writer stops after `writes`, the reader with it
    operations = 0
    while time.monotonic() < deadline and operations < 2_000_000:
        operations += 1
        index = rng.randrange(keys)
        if role == "writer":
            if outcome.writes >= writes:
                finished.set()
                break
            write_once(repo, index, outcome)
            time.sleep(0.002)
        elif finished.is_set():
            break
        else:
            read_once(repo, index, outcome)
    finished.set()
    outcome.hits = cache.hits
    cache.close()
    queue.put((role, outcome.reads, outcome.writes, outcome.stale, outcome.windows, outcome.hits))


def run_two_processes(
    spec: dict[str, Any], *, writes: int = 400, seconds: float = 60.0, keys: int = 100,
    on_start: Callable[[], None] | None = None,
) -> tuple[Outcome, Outcome]:
    """A writer process (``writes`` writes, 2 ms apart) and a reader process reading until the writer is done, on
    ``Cache(**spec)`` each; ``seconds`` bounds the run, ``on_start`` is called when both start. Returns (writer,
    reader) outcomes."""
    results = run_roles(_process_main, lambda shared, queue: (spec, shared, writes, seconds, keys, queue),
                        keys=keys, seconds=seconds, on_start=on_start)  # fmt: skip
    def outcome(role: str) -> Outcome:
        reads, writes_done, stale, windows, hits = results[role]
        return Outcome(reads, writes_done, stale, hits, windows)

    return outcome("writer"), outcome("reader")


def run_roles(
    target: Callable[..., None], arguments: Callable[[tuple[Any, ...], Any], tuple[Any, ...]], *, keys: int,
    seconds: float, on_start: Callable[[], None] | None = None,
) -> dict[str, tuple[Any, ...]]:
    """Spawn a ``"writer"`` and a ``"reader"`` process, ``target(role, *arguments(shared, queue))``, and return what
    each put on ``queue`` after its role, by role. ``shared``: versions, completed versions and their times per
    id (shared arrays), a lock, a start barrier the caller also waits on, and a ``finished`` event. ``on_start`` is
    called once both processes are past the barrier (their clocks start). A process still alive 10 s after the
    results is killed."""
    context = multiprocessing.get_context("spawn")
    shared = (
        context.Array("q", keys, lock=False),
        context.Array("q", keys, lock=False),
        context.Array("d", keys, lock=False),
        context.Lock(),
        context.Barrier(3),
        context.Event(),
    )
    queue = context.Queue()
    processes = [
        context.Process(target=target, args=(role, *arguments(shared, queue))) for role in ("writer", "reader")
    ]
    for process in processes:
        process.start()
    try:
        shared[4].wait(60)
        if on_start is not None:
            on_start()
        results = {}
        for _ in processes:
            role, *rest = queue.get(timeout=seconds + 90)
            results[role] = tuple(rest)
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
    return results


def outage(server: RedisServer, how: str, stop: threading.Event, down_at: float, up_at: float) -> None:
    """``down_at`` seconds in, take ``server`` away (``restart``: SIGKILL; ``sigstop``: paused); ``up_at`` seconds
    in, bring it back (restarted empty on the same port, or resumed). ``stop`` ends either wait early."""
    if stop.wait(down_at):
        return
    if how == "restart":
        server.kill()
    else:
        server.pause()
    stop.wait(max(0.0, up_at - down_at))
    if how == "restart":
        server.start()  # same port, empty
    else:
        server.resume()
