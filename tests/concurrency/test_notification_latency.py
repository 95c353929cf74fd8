"""Another process's write is heard quickly by a process busy with memory-tier hits (issue 23, item 6).

cachekit changes no process-wide setting by default: the interpreter's switch interval stays the user's. A
reading thread pulls the subscription's socket itself (at most once per millisecond), so it needs neither the
GIL to change hands nor the subscriber thread to be scheduled. Measured here: a reader process doing nothing but
memory-tier hits of one key, a writer process updating it every 10-20 ms; the delay from a write returning to the
reader's first read that sees it, in wall time and in the reader thread's own CPU time (``thread_time``: how
long it ran before it heard; on a machine with more runnable processes than cores the wall time also holds the
stretches the OS gives the reader no CPU, 8-12 ms each for a busy loop on the shared 2-core test box).
"""

from __future__ import annotations

import bisect
import multiprocessing
import os
import random
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates

from .load import cpu_load

WRITES = int(os.environ.get("CACHEKIT_LATENCY_WRITES", "200"))
#: Generous: the bound is for a loaded, shared machine; the p99 is printed (goal: 10 ms on a quiet one).
LATE = 0.1
#: The issue's goal, 10 ms p99, in the reader thread's CPU time. It held on the design before the read path pulled
#: the socket too (2.8-4.4 ms): the check that tells the designs apart is deterministic, in
#: tests/unit/test_generation_inbox.py (a read hears a write while the subscriber thread is held).
CPU_GOAL = 0.01
#: Busy-loop processes next to the reader and the writer.
LOAD = int(os.environ.get("CACHEKIT_LATENCY_LOAD", "1"))
ATTEMPTS = 3


class _Repo:
    name = "latency"

    def __init__(self, cache: Cache, version: Any) -> None:
        self.cache, self.version = cache, version

    @cached(action="get")
    def get(self, id: str) -> int:
        return int(self.version.value)

    @invalidates("update")
    def update(self, id: str, data: dict[str, Any]) -> None:
        self.version.value += 1


def _spec(url: str, prefix: str) -> dict[str, Any]:
    return {
        "namespace": "latency",
        "drivers": [
            {"driver": "memory", "ttl": 60, "config": {"max_size": 0}},
            {"driver": "redis", "ttl": 60, "config": {"url": url, "key_prefix": prefix}},
        ],
    }


def _reader(
    spec: dict[str, Any], version: Any, stats: Any, seen: Any, cpu: Any, completed: Any, ready: Any, done: Any
) -> None:
    cache = Cache(**spec)
    store = cache._gens.store
    subscriber = store._on_message

    def on_message(data: bytes) -> None:  # counts who applied each notification: the read path or the thread
        stats[0 if threading.current_thread() is threading.main_thread() else 1] += 1
        subscriber(data)

    store._on_message = on_message
    repo = _Repo(cache, version)
    repo.get("k")
    interval = sys.getswitchinterval()
    ready.set()
    last = repo.get("k")
    clock, thread_time = time.monotonic, time.thread_time
    deadline = clock() + 120
    walls: list[float] = []  # (wall, this thread's CPU time) every 0.2 ms or so, to find its CPU time at a write
    cpus: list[float] = []
    seen_cpu = [0.0] * len(seen)
    next_sample = 0.0
    while not done.is_set():
        now = clock()
        if now >= deadline:
            break
        if now >= next_sample:
            walls.append(now)
            cpus.append(thread_time())
            next_sample = now + 0.0002
        got = repo.get("k")  # a memory-tier hit, except right after a write
        if got > last:
            now, used = clock(), thread_time()
            for v in range(last + 1, min(got, len(seen) - 1) + 1):
                seen[v], seen_cpu[v] = now, used
            last = got
    for v in range(1, len(seen)):
        if seen[v] and completed[v]:
            at = bisect.bisect_right(walls, completed[v]) - 1
            cpu[v] = max(0.0, seen_cpu[v] - cpus[at]) if at >= 0 else 0.0
    seen[0] = interval
    cache.close()


def measure(url: str, prefix: str, writes: int = WRITES) -> tuple[list[float], float]:
    """(delays in seconds per write, the reader's switch interval); ``measure.cpu``: the reader's CPU time."""
    context = multiprocessing.get_context("spawn")
    version = context.Value("q", 0, lock=False)
    completed = context.Array("d", writes + 2, lock=False)
    seen = context.Array("d", writes + 2, lock=False)
    cpu = context.Array("d", writes + 2, lock=False)
    stats = context.Array("q", 2, lock=False)
    ready, done = context.Event(), context.Event()
    spec = _spec(url, prefix)
    reader = context.Process(target=_reader, args=(spec, version, stats, seen, cpu, completed, ready, done))
    reader.start()
    cache = Cache(**spec)
    try:
        assert ready.wait(60), "the reader did not start"
        repo = _Repo(cache, version)
        rng = random.Random(7)
        time.sleep(0.2)  # the reader's subscription is confirmed
        for _ in range(writes):
            time.sleep(rng.uniform(0.01, 0.02))
            repo.update("k", {})
            completed[int(version.value)] = time.monotonic()
        time.sleep(0.3)
    finally:
        done.set()
        reader.join(30)
        if reader.is_alive():
            reader.kill()
            reader.join(5)
        cache.close()
    first = 2  # the first write may meet the subscription still starting
    delays = [max(0.0, seen[v] - completed[v]) if seen[v] else float("inf") for v in range(first, writes + 1)]
    measure.applied = (int(stats[0]), int(stats[1]))  # type: ignore[attr-defined]
    measure.cpu = [cpu[v] if seen[v] else float("inf") for v in range(first, writes + 1)]  # type: ignore[attr-defined]
    return delays, float(seen[0])


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def test_a_busy_reader_hears_a_write_without_a_shorter_switch_interval(redis_url: str, redis_prefix: str) -> None:
    # The reader's CPU time is what the library controls: checked on every run. The wall time also holds the
    # stretches the OS runs other processes (at load 10 on 2 cores, a few writes wait 100+ ms with a CPU-time
    # p99 of 1.5 ms): up to ATTEMPTS runs for it.
    for attempt in range(1, ATTEMPTS + 1):
        with cpu_load(LOAD, seconds=60):
            delays, interval = measure(redis_url, redis_prefix)
        cpu = measure.cpu  # type: ignore[attr-defined]
        late = [d for d in delays if d > LATE]
        print(f"run {attempt}: wall p99 {p99(delays) * 1000:.2f} ms, max {max(delays) * 1000:.2f} ms; reader CPU "
              f"time p99 {p99(cpu) * 1000:.2f} ms, max {max(cpu) * 1000:.2f} ms over {len(delays)} writes")
        assert interval == pytest.approx(0.005), "cachekit must leave the interpreter's switch interval alone"
        # The goal (10 ms p99), in the time the reader ran, whatever the machine's load.
        assert p99(cpu) <= CPU_GOAL, f"p99 {p99(cpu) * 1000:.1f} ms of the reader's CPU time before it heard a write"
        if len(late) <= len(delays) // 100:
            break
    assert len(late) <= len(delays) // 100, f"{len(late)} writes heard later than {LATE * 1000:.0f} ms: {late[:5]}"


_CHECK = """
import sys
from cachekit import Cache
before = sys.getswitchinterval()
cache = Cache(driver="redis", namespace="latency", config={"url": sys.argv[1], "key_prefix": sys.argv[2]})
cache._gens.store.trusted("latency")  # starts the subscriber
assert cache._gens.store._thread is not None, "the subscriber has started"
print(before, sys.getswitchinterval())
cache.close()
"""


def test_no_process_wide_setting_changes_by_default(redis_url: str, redis_prefix: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEKIT_")}
    out = subprocess.run(
        [sys.executable, "-c", _CHECK, redis_url, redis_prefix],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.split()
    assert after == before, "starting a generation subscriber must not change the switch interval"


_EXIT = """
import sys
from cachekit import Cache
cache = Cache(driver="redis", namespace="latency", config={"url": sys.argv[1], "key_prefix": sys.argv[2]})
cache.set("a", 1)
cache.invalidate_resource("users")  # starts the subscriber
cache.driver.clear()
if sys.argv[3] == "close":
    cache.close()
"""


@pytest.mark.parametrize("close", ["close", "no close"])
def test_a_process_exits_right_after_starting_a_subscriber(redis_url: str, redis_prefix: str, close: str) -> None:
    # The subscriber thread must not be inside redis-py's pool (its lock) when the interpreter exits: the main
    # thread's Redis.__del__ then waited for that lock forever.
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", _EXIT, redis_url, redis_prefix, close],
            capture_output=True, text=True, timeout=30, check=False,
        )
        assert out.returncode == 0, out.stderr


if __name__ == "__main__":  # python -m tests.concurrency.test_notification_latency redis://127.0.0.1:6379/0
    prefix = f"cachekit-latency:{os.getpid()}:"
    found, switch = measure(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0", prefix)
    print(f"switch interval {switch}: p50 {sorted(found)[len(found) // 2] * 1000:.2f} ms, "
          f"p99 {p99(found) * 1000:.2f} ms, max {max(found) * 1000:.2f} ms over {len(found)} writes; reader CPU "
          f"time p50 {sorted(measure.cpu)[len(found) // 2] * 1000:.2f} ms, p99 {p99(measure.cpu) * 1000:.2f} ms; "  # type: ignore[attr-defined]
          f"notifications applied by reads / by the subscriber thread: {measure.applied}")  # type: ignore[attr-defined]
