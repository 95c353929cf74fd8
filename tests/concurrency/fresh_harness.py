"""The freshness guarantee's harness (issue 21): versioned records read and written with every freshness policy on,
a TTL short enough that entries expire all the time, and a source that fails one load in five.

A read is *invalidated* when it returns a version older than a write that completed (returned to its caller)
before the read began: that is a value stored under older generations than the read's, which no policy may serve.
A read whose load fails with nothing servable raises; it is counted as an error, never as a read.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from cachekit import Cache, cached, invalidates

from .harness import Outcome, Source, run_roles, thread_source, write_once

TTL = 0.05
POLICY = {"get": {"ttl": TTL, "stale_while_revalidate": 0.02, "stale_if_error": 30.0, "early_refresh": True}}
FAILURE_RATE = 0.2


class FreshRecords:
    """A repository over a :class:`Source` whose loads fail at :data:`FAILURE_RATE`."""

    name = "records"

    def __init__(self, cache: Cache, source: Source) -> None:
        self.cache, self.source = cache, source

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any]:
        version = int(self.source.versions[int(id)])
        time.sleep(0.0005)
        if random.random() < FAILURE_RATE:
            raise RuntimeError("the source failed")
        return {"id": id, "version": version}

    @invalidates("update")
    def update(self, id: str, data: dict[str, Any]) -> None:
        data["version"] = self.source.write(int(id))


def read_once(repo: FreshRecords, index: int, outcome: Outcome, errors: list[int]) -> None:
    required, completed_at = repo.source.required(index)
    started = time.monotonic()
    try:
        got = repo.get(str(index))["version"]
    except RuntimeError:
        errors[0] += 1
        return
    outcome.reads += 1
    if got < required:
        outcome.stale += 1
        outcome.windows.append(started - completed_at)


def run_threads(cache: Cache, *, seconds: float, threads: int = 8, keys: int = 300) -> tuple[Outcome, int]:
    """``threads`` threads reading and writing (10 %) ``keys`` records for ``seconds``; (outcome, errors)."""
    repo = FreshRecords(cache, thread_source(keys))
    outcomes = [Outcome() for _ in range(threads)]
    errors = [0]
    deadline = time.monotonic() + seconds

    def work(seed: int, outcome: Outcome) -> None:
        rng = random.Random(seed)
        for _ in range(500_000):
            if time.monotonic() >= deadline:
                return
            index = rng.randrange(keys)
            if rng.random() < 0.1:
                write_once(repo, index, outcome)  # type: ignore[arg-type]
            else:
                read_once(repo, index, outcome, errors)

    workers = [threading.Thread(target=work, args=(i, outcomes[i])) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(seconds + 60)
    total = Outcome()
    for outcome in outcomes:
        total.reads += outcome.reads
        total.writes += outcome.writes
        total.stale += outcome.stale
        total.windows += outcome.windows
    return total, errors[0]


def _process_main(
    role: str, spec: dict[str, Any], shared: tuple[Any, ...], seconds: float, keys: int, queue: Any
) -> None:
    versions, completed, completed_at, lock, start, _finished = shared
    source = Source(versions, completed, completed_at, lock)
    cache = Cache(**spec)
    repo = FreshRecords(cache, source)
    outcome, errors = Outcome(), [0]
    rng = random.Random(1 if role == "writer" else 2)
    start.wait(30)
    deadline = time.monotonic() + seconds
    operations = 0
    while time.monotonic() < deadline and operations < 1_000_000:
        operations += 1
        index = rng.randrange(keys)
        if role == "writer":
            write_once(repo, index, outcome)  # type: ignore[arg-type]
            read_once(repo, rng.randrange(keys), outcome, errors)
            time.sleep(0.002)
        else:
            read_once(repo, index, outcome, errors)
    counts = cache.stats().details.get("freshness", {}).get("records/get", {})
    cache.close()
    queue.put((role, outcome.reads, outcome.writes, outcome.stale, outcome.windows, errors[0], counts))


def run_two_processes(spec: dict[str, Any], *, seconds: float, keys: int = 50) -> dict[str, Any]:
    """A writer process (which also reads) and a reader process on ``Cache(**spec)``; their results by role."""
    results = run_roles(_process_main, lambda shared, queue: (spec, shared, seconds, keys, queue), keys=keys,
                        seconds=seconds)  # fmt: skip
    found = {}
    for role, (reads, writes, stale, windows, errors, counts) in results.items():
        found[role] = {"outcome": Outcome(reads, writes, stale, 0, windows), "errors": errors, "counts": counts}
    return found
