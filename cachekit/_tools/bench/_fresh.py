"""The ``freshness`` section (issue 21): what the freshness policies cost on a hit, and what they buy at expiry.

* instructions per hit (valgrind) of a ``@cached`` method with the policies off and on (stale_while_revalidate,
  stale_if_error, early_refresh), msgpack and objects mode: target on <= 1.15x off;
* a hot key expiring under 50 reader threads, loads of 50 ms: the p99 latency of the reads that start in the
  60 ms after each expiry, with ``stale_while_revalidate`` against plain hits in the same windows (no expiry;
  target <= 1.5x) and against no policy (a full load);
* XFetch: Zipf reads (s = 1.1) over 200 keys whose loads take 50 ms, 1 s TTL: the reads that wait for a load and
  the source calls per key expiry, with and without ``early_refresh``.

Expiry is forced by moving the namespace's clock forward (the memory driver expires on that clock too), so each
phase sees the same number of expiries at the same moments; phases are interleaved over the rounds.
"""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Any

from ._core import Outcome, Section, Settings
from ._fresh_child import repo as _repo
from ._instructions import count_instructions, instructions_off

__all__ = ["run_fresh"]

_ROWS = ("fresh_msgpack_off", "fresh_msgpack_swr", "fresh_msgpack_on", "fresh_objects_off", "fresh_objects_swr",
         "fresh_objects_on")


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else float("nan")


def _expiry_phase(kind: str, seconds: float, expiries: int) -> list[float]:
    """Read latencies (s) of the reads starting within 60 ms after each forced expiry, 50 reader threads."""
    from cachekit import Cache

    offset = [0.0]
    ttl = 1e6 if kind == "plain" else 5.0
    policies = {"get": {"stale_while_revalidate": 60.0}} if kind == "swr" else None
    cache = Cache("memory", ttl=ttl, clock=lambda: time.time() + offset[0], method_policies=policies)
    repo = _repo(cache, lambda _id: time.sleep(0.05))
    repo.get("hot")
    stop = threading.Event()
    marks: list[float] = []
    found: list[tuple[float, float]] = []

    def reader() -> None:
        mine = []
        clock = time.perf_counter
        while not stop.is_set():
            start = clock()
            repo.get("hot")
            mine.append((start, clock() - start))
            time.sleep(0.001)
        found.extend(mine)

    threads = [threading.Thread(target=reader, daemon=True) for _ in range(50)]
    for thread in threads:
        thread.start()
    gap = seconds / (expiries + 1)
    for _ in range(expiries):
        time.sleep(gap)
        marks.append(time.perf_counter())
        offset[0] += 5.0  # past the TTL (no effect on the plain phase's 1e6 s)
    time.sleep(gap)
    stop.set()
    for thread in threads:
        thread.join()
    cache._fresh.drain(2)
    cache.close()
    return [latency for start, latency in found if any(0 <= start - mark < 0.06 for mark in marks)]


def _xfetch_phase(early: bool, seconds: float, hot: int = 20) -> dict[str, float]:
    """Zipf reads (s = 1.1) of 200 keys by 8 threads, 50 ms loads, 1 s TTL: reads waiting for a load and source
    calls, for the ``hot`` most read keys (each read many times per TTL, so it expires once per TTL) and all."""
    from cachekit import Cache

    policies = {"get": {"early_refresh": True}} if early else None
    cache = Cache("memory", ttl=1.0, method_policies=policies)
    keys = [f"k{i}" for i in range(200)]
    rank = {key: index for index, key in enumerate(keys)}
    calls = [0, 0]  # hot keys, all

    def load(id: str) -> None:
        calls[1] += 1
        if rank[id] < hot:
            calls[0] += 1
        time.sleep(0.05)

    repo = _repo(cache, load)
    weights = [1 / (index + 1) ** 1.1 for index in range(len(keys))]
    for key in keys:
        repo.get(key)
    calls[:] = [0, 0]
    stop = threading.Event()
    waits, reads = [0, 0], [0]

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        clock = time.perf_counter
        while not stop.is_set():
            key = rng.choices(keys, weights)[0]
            start = clock()
            repo.get(key)
            if clock() - start >= 0.03:  # a hit is microseconds; this read waited for a load
                waits[1] += 1
                if rank[key] < hot:
                    waits[0] += 1
            reads[0] += 1
            time.sleep(0.001)

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(8)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cache._fresh.drain(2)
    cache.close()
    expiries = hot * elapsed / 1.0
    return {"reads": reads[0], "waits": waits[1], "calls": calls[1], "hot_waits": waits[0], "hot_calls": calls[0],
            "expiries": expiries, "waits_per_expiry": waits[0] / expiries, "calls_per_expiry": calls[0] / expiries}


def run_fresh(settings: Settings, _services: Any = None) -> Section:
    """Measure the freshness section (see the module docstring)."""
    section = Section("freshness", "Freshness policies: hit cost, latency at expiry, XFetch")
    quick = settings.mode == "quick"
    # 1. instructions per hit, off and on
    counted = count_instructions(_ROWS, settings.instruction_hits) if settings.instructions else instructions_off()
    if isinstance(counted, str):
        section.notes.append(f"instructions per hit: n/a, {counted}")
    else:
        for store in ("msgpack", "objects"):
            off = counted[f"fresh_{store}_off"]
            for state, what in (("swr", "stale_while_revalidate + stale_if_error"), ("on", "all three")):
                on = counted[f"fresh_{store}_{state}"]
                ratio = on / off
                section.outcomes.append(Outcome(
                    f"fresh_{store}_{state}_instructions", f"{store} hit, {what} vs no policy: instructions per hit",
                    round(ratio, 3), "x", "≤ 1.15x", "PASS" if ratio <= 1.15 else "MISS", f"{on:,.0f} vs {off:,.0f}",
                ))
    # 2. p99 at expiry, 50 readers
    seconds, expiries, rounds = (1.0, 4, 1) if quick else (1.5, 5, 2)
    pooled: dict[str, list[float]] = {"plain": [], "swr": [], "none": []}
    for round_ in range(rounds):
        order = ["plain", "swr", "none"]
        for kind in order[round_ % 3:] + order[:round_ % 3]:
            pooled[kind].extend(_expiry_phase(kind, seconds, expiries))
    p99 = {kind: _percentile(samples, 0.99) for kind, samples in pooled.items()}
    ratio = p99["swr"] / p99["plain"]
    section.outcomes.append(Outcome(
        "fresh_expiry_p99", "hot key at expiry, 50 readers: p99 with stale_while_revalidate vs plain hits",
        round(ratio, 2), "x", "≤ 1.5x", "PASS" if ratio <= 1.5 else "MISS",
        f"{p99['swr'] * 1e6:,.0f} µs vs {p99['plain'] * 1e6:,.0f} µs ({len(pooled['swr'])} / {len(pooled['plain'])} "
        f"reads)",
    ))
    section.outcomes.append(Outcome(
        "fresh_expiry_p99_none", "hot key at expiry, 50 readers: p99 without the policy vs plain hits",
        round(p99["none"] / p99["plain"], 2), "x", None, None,
        f"{p99['none'] * 1e6:,.0f} µs (a full 50 ms load), {len(pooled['none'])} reads",
    ))
    # 3. XFetch
    duration = 2.0 if quick else 4.0
    without, with_early = _xfetch_phase(False, duration), _xfetch_phase(True, duration)
    for name, found in (("without", without), ("with", with_early)):
        section.outcomes.append(Outcome(
            f"fresh_xfetch_{name}",
            f"Zipf reads, 50 ms loads, {name} early_refresh: reads waiting per expiry (20 hottest keys)",
            round(found["waits_per_expiry"], 3), "", None, None,
            f"source calls per expiry {found['calls_per_expiry']:.2f} ({found['hot_calls']} calls, "
            f"{found['expiries']:.0f} expiries); all 200 keys: {found['waits']} of {found['reads']} reads waited, "
            f"{found['calls']} calls",
        ))
    section.notes.append(
        "Expiry rows: reads starting within 60 ms after each forced expiry (the namespace clock moved past the "
        "TTL), pooled over rounds; the plain row reads the same key with no expiry in the same windows."
    )
    return section
