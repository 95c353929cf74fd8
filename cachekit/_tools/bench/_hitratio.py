"""Section ``hitratio`` (issue 22): how many reads each eviction policy serves from a cache of the same size.

Not a timing: each trace is replayed through each contender (a read; on a miss, a write), and the share of reads
that hit is reported. Traces, deterministic (seeded):

* ``zipf_scan``: 200,000 reads; blocks of 40,000 reads of Zipf(0.9) over 100,000 keys, each block followed by a
  scan of 10,000 keys read once (a ``list()`` of a large table, a warmer);
* ``loop``: 200,000 reads cycling over 20,000 keys (LRU's worst case: each key is gone just before its reuse).

Capacities: 1 % and 10 % of the 100,000 keys (1,000 and 10,000 entries). Contenders in the same run: cachekit's
memory driver with ``eviction_policy="lru"`` and ``"tinylfu"``, cachetools ``LRUCache``, and theine (W-TinyLFU,
Rust core) when installed. Targets: ``tinylfu`` at least theine's hit ratio on every trace and size (0.5 point of
slack: the sketches hash differently), and at least LRU + 10 points on the scan trace.

With valgrind, instructions per hit of a ``@cached`` method on the memory driver (objects and msgpack mode, one
key hit 5,000 times) under each policy: the hit path of ``tinylfu`` buffers the key (one C call, as LRU's move),
target at most 1.1x LRU; and instructions per read over the scan trace at 10 %, hits and misses with their writes
and the policy's work (reported, no target).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from typing import Any

from ._core import Outcome, Section, Settings
from ._instructions import count_instructions, instructions_off

__all__ = ["TRACES", "hit_ratio", "instruction_child", "run_hitratio", "trace"]

#: Trace name -> what it is (see the module docstring).
TRACES = {
    "zipf_scan": "Zipf(0.9) over 100,000 keys, a 10,000-key scan after every 40,000 reads",
    "loop": "a loop over 20,000 keys",
}
_KEYS = 100_000
_READS = 200_000
_CAPACITIES = (1_000, 10_000)
_SLACK = 0.005
_SCAN_GAIN = 0.10
_HIT_TARGET = 1.1
_TRACE_READS = 20_000  # per callgrind child of a trace row, after as many reads of warm-up
_REC = {"id": "u1", "name": "Ann", "age": 41, "active": True, "score": 3.5, "tags": ["a", "b"],
        "region": "eu", "meta": {"k": 1}, "nothing": None, "email": "ann@example.com"}  # fmt: skip


def trace(name: str, reads: int = _READS, seed: int = 22) -> list[str]:
    """The keys read by trace ``name``, in order (the same list for the same arguments)."""
    if name == "loop":
        return [f"l{i % 20_000}" for i in range(reads)]
    if name != "zipf_scan":
        raise ValueError(f"unknown trace {name!r}; one of {sorted(TRACES)}")
    rnd = random.Random(seed)
    weights = list(itertools.accumulate(1.0 / rank**0.9 for rank in range(1, _KEYS + 1)))
    names = [f"z{i}" for i in range(_KEYS)]
    rnd.shuffle(names)  # popularity unrelated to the key's name (and so to its hash)
    keys: list[str] = []
    scanned = 0
    while len(keys) < reads:
        keys += rnd.choices(names, cum_weights=weights, k=40_000)
        keys += [f"s{scanned + i}" for i in range(10_000)]
        scanned += 10_000
    return keys[:reads]


def _cachekit(policy: str) -> Callable[[int], tuple[Callable[[str], bool], Callable[[str], None]]]:
    def make(capacity: int) -> tuple[Callable[[str], bool], Callable[[str], None]]:
        from cachekit import MISSING
        from cachekit.drivers.memory import MemoryDriver

        driver = MemoryDriver(max_size=capacity, eviction_policy=policy)
        get, set_ = driver.get, driver.set
        return (lambda key: get(key) is not MISSING), (lambda key: set_(key, b"v"))

    return make


def _cachetools(capacity: int) -> tuple[Callable[[str], bool], Callable[[str], None]]:
    import cachetools

    cache: cachetools.LRUCache[str, int] = cachetools.LRUCache(capacity)
    return (lambda key: cache.get(key) is not None), (lambda key: cache.__setitem__(key, 1))


def _theine(capacity: int) -> tuple[Callable[[str], bool], Callable[[str], None]]:
    import theine

    cache: Any = theine.Cache(capacity)
    return (lambda key: bool(cache.get(key)[1])), (lambda key: cache.set(key, 1))


_CONTENDERS: dict[str, tuple[str, Callable[[int], tuple[Callable[[str], bool], Callable[[str], None]]]]] = {
    "cachekit_lru": ("cachekit memory, eviction_policy='lru'", _cachekit("lru")),
    "cachekit_tinylfu": ("cachekit memory, eviction_policy='tinylfu'", _cachekit("tinylfu")),
    "cachetools_lru": ("cachetools LRUCache", _cachetools),
    "theine": ("theine Cache (W-TinyLFU)", _theine),
}


def hit_ratio(contender: str, keys: Sequence[str], capacity: int) -> float:
    """The share of ``keys`` that ``contender`` (a key of the contenders) serves from a cache of ``capacity``."""
    hit, store = _CONTENDERS[contender][1](capacity)
    hits = 0
    for key in keys:
        if hit(key):
            hits += 1
        else:
            store(key)
    return hits / len(keys)


def instruction_child(row_id: str, hits: int, warmup: int, *_args: str) -> None:
    """The callgrind child of a ``hitratio_*`` row (see :func:`cachekit._tools.bench._instructions.child`).

    ``hitratio_hit_{policy}_{objects|msgpack}``: ``hits`` hits of a ``@cached`` method; ``hitratio_trace_{policy}``:
    ``hits`` reads of the scan trace at 10 % after as many of warm-up (the trace is built in both runs).
    """
    policy, kind = row_id.split("_")[2], row_id.split("_")[1]
    if kind == "trace":
        keys = trace("zipf_scan", 2 * _TRACE_READS)
        hit, store = _cachekit(policy)(_CAPACITIES[1])
        for key in keys[:_TRACE_READS]:
            if not hit(key):
                store(key)
        for key in keys[_TRACE_READS:_TRACE_READS + hits]:
            if not hit(key):
                store(key)
        return
    from cachekit import Cache, cached

    config: dict[str, Any] = {"max_size": 10_000, "eviction_policy": policy}
    if row_id.endswith("_objects"):
        config["store"] = "objects"
    cache = Cache(driver="memory", ttl=600, config=config)

    class Repo:
        name = "users"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get")
        def get(self, id: str) -> dict[str, Any]:
            return _REC

    get = Repo().get
    for _ in range(warmup + hits):
        get("u1")


def run_hitratio(settings: Settings, reads: int = _READS) -> Section:
    """Replay the traces (``reads`` long) through every contender; count instructions under valgrind."""
    section = Section("hitratio", "Hit ratio by eviction policy (same trace, same capacity)")
    available = dict(_CONTENDERS)
    try:
        import theine  # noqa: F401
    except ImportError:
        del available["theine"]
        section.skipped.append("theine: not installed (pip install theine); the at-least-theine targets are off")
    for name, about in TRACES.items():
        keys = trace(name, reads)
        for capacity in _CAPACITIES:
            ratios = {contender: hit_ratio(contender, keys, capacity) for contender in available}
            share = f"{capacity * 100 // _KEYS} %"
            for contender, ratio in ratios.items():
                target = status = None
                note = f"{about}; capacity {capacity:,} ({share})"
                if contender == "cachekit_tinylfu":
                    checks = []
                    if "theine" in ratios:
                        checks.append(ratio >= ratios["theine"] - _SLACK)
                        note += f"; theine {ratios['theine']:.1%}"
                    if name == "zipf_scan":
                        checks.append(ratio >= ratios["cachekit_lru"] + _SCAN_GAIN)
                        target = f"≥ theine, ≥ LRU + {_SCAN_GAIN * 100:g} points"
                    else:
                        target = "≥ theine"
                    note += f"; LRU {ratios['cachekit_lru']:.1%}"
                    status = "PASS" if all(checks) else "MISS"
                section.outcomes.append(Outcome(
                    f"{name}_{capacity}_{contender}", f"{name} at {share}: {available[contender][0]}",
                    round(ratio, 4), "ratio", target, status, note,
                ))
    _instructions(section, settings)
    section.notes.append(
        "Each read is a get; a miss writes the key. Hit ratio over all reads, scans included (they miss everywhere)."
    )
    return section


def _instructions(section: Section, settings: Settings) -> None:
    hit_rows = [f"hitratio_hit_{policy}_{store}" for store in ("objects", "msgpack") for policy in ("lru", "tinylfu")]
    trace_rows = ["hitratio_trace_lru", "hitratio_trace_tinylfu"]
    if not settings.instructions:
        section.notes.append(f"instructions: n/a, {instructions_off()}")
        return
    hits = count_instructions(hit_rows, settings.instruction_hits)
    reads = count_instructions(trace_rows, _TRACE_READS)
    if isinstance(hits, str) or isinstance(reads, str):
        section.notes.append(f"instructions: n/a, {hits if isinstance(hits, str) else reads}")
        return
    for store in ("objects", "msgpack"):
        lru, tiny = hits[f"hitratio_hit_lru_{store}"], hits[f"hitratio_hit_tinylfu_{store}"]
        ratio = tiny / lru
        section.outcomes.append(Outcome(
            f"hit_instructions_{store}", f"{store} mode: instructions per method hit, tinylfu vs lru",
            round(ratio, 3), "x", f"≤ {_HIT_TARGET:g}x", "PASS" if ratio <= _HIT_TARGET else "MISS",
            f"{tiny:,.0f} vs {lru:,.0f}",
        ))
    lru, tiny = reads["hitratio_trace_lru"], reads["hitratio_trace_tinylfu"]
    section.outcomes.append(Outcome(
        "trace_instructions", "zipf_scan at 10 %: instructions per read (hits, misses, writes), tinylfu vs lru",
        round(tiny / lru, 3), "x", None, None, f"{tiny:,.0f} vs {lru:,.0f}; the policy's work is done at writes",
    ))
    section.notes.append(
        f"instructions: valgrind callgrind, (N - 0) / N with N = {settings.instruction_hits:,} method hits or "
        f"{_TRACE_READS:,} trace reads, PYTHONHASHSEED=0"
    )
