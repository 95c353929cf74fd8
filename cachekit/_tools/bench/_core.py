"""Timing primitives and result types shared by the benchmark sections.

Method (see ``tests/bench/README.md``): every row is timed in batches of ``ops`` operations; the rows that are
compared with each other are measured in the same *group*, round-robin (A, B, C, then B, C, A, ...), so slow
drift on a shared machine hits all of them alike. A round's figure is the batch's mean ns per operation
(batch-timed rows) or its median operation (per-operation rows); a row's figure is the median over the rounds
(batch-timed rows) or the median of every operation, its p50 (per-operation rows); its ratio to a reference is
the ratio of the two figures shown (the median of the per-round ratios is kept as ``paired_ratios``).
"""

from __future__ import annotations

import gc
import statistics
import time
import timeit
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RECORD",
    "Batch",
    "Case",
    "Measurement",
    "Outcome",
    "Row",
    "Section",
    "Settings",
    "batch_timer",
    "make_row",
    "measure",
    "per_op_timer",
]


#: The value every benchmark row caches: 10 fields of the usual JSON-ish types (161 bytes as msgpack).
RECORD: dict[str, Any] = {
    "id": "u1", "name": "Ada Lovelace", "email": "ada@example.com", "active": True, "score": 9.5,
    "visits": 1234, "tags": ["admin", "math"], "address": {"city": "London", "zip": "W1"}, "manager": None,
    "region": "eu",
}


@dataclass(frozen=True)
class Settings:
    """Batch sizes (operations per timed batch) and rounds for one run; :meth:`quick` is the short mode."""

    rounds_fast: int = 201
    batch_ns: int = 2_000_000
    ops_memory: int = 10_000
    rounds_io: int = 11
    ops_disk: int = 2_000
    ops_disk_set: int = 500
    ops_redis: int = 1_500
    ops_redis_many: int = 150
    rounds_s3: int = 9
    ops_s3: int = 80
    ops_plugin_cached: int = 5_000
    ops_plugin_uncached: int = 25
    workload_operations: int = 2_000
    #: Count instructions per hit under valgrind for the memory rows (about a minute; off in quick mode).
    instructions: bool = True
    instruction_hits: int = 5_000
    async_instruction_hits: int = 2_000
    mode: str = "full"

    @classmethod
    def quick(cls) -> Settings:
        """About a tenth of the full run: enough to see the shape, too few rounds for tight figures."""
        return cls(
            rounds_fast=51, rounds_io=5, ops_disk=300, ops_disk_set=100, ops_redis=200,
            ops_redis_many=20, rounds_s3=3, ops_s3=12, ops_plugin_uncached=6,
            workload_operations=500, instructions=False, mode="quick",
        )


@dataclass(frozen=True)
class Batch:
    """One timed batch: its total time and, for per-operation timing, each operation's time."""

    total_ns: int
    ops: int
    samples: Sequence[int] | None = None


BatchRunner = Callable[[int], Batch]
_MIN_BATCH = 50


def batch_timer(stmt: str, namespace: Mapping[str, Any], setup: str = "pass") -> BatchRunner:
    """Time ``stmt`` in a timeit-compiled loop (GC off, names bound as locals by ``setup``).

    For sub-microsecond operations, where a clock read per operation would cost as much as the operation.
    """
    timer = timeit.Timer(stmt, setup, timer=time.perf_counter_ns, globals=dict(namespace))

    def run(ops: int) -> Batch:
        return Batch(int(timer.timeit(ops)), ops)

    return run


def per_op_timer(op: Callable[[], object], setup: Callable[[], object] | None = None) -> BatchRunner:
    """Time each call of ``op`` separately (GC off during the batch), which gives latency percentiles;
    ``setup()``, when given, runs untimed before each call.

    For operations of several microseconds and more (disk, network), where a clock read is noise.
    """

    def run(ops: int) -> Batch:
        clock = time.perf_counter_ns
        samples = [0] * ops
        enabled = gc.isenabled()
        gc.disable()
        try:
            for i in range(ops):
                if setup is not None:
                    setup()
                start = clock()
                op()
                samples[i] = clock() - start
        finally:
            if enabled:
                gc.enable()
        return Batch(sum(samples), ops, samples)

    return run


@dataclass
class Case:
    """A row to measure: ``run(ops)`` performs and times ``ops`` operations.

    :param ops: operations per batch (the most, with ``batch_ns``).
    :param per: how many units one operation covers (``get_many`` of 100 keys reports per key: ``per=100``).
    :param batch_ns: size the batch from the warm-up so that it lasts about this long. Short batches keep a
        batch-timed figure clean on a shared machine: another process's time slice then spoils few batches,
        and the median over the rounds discards those.
    """

    id: str
    label: str
    run: BatchRunner
    ops: int
    per: int = 1
    note: str = ""
    batch_ns: int | None = None


@dataclass
class Measurement:
    """What :func:`measure` saw for one case, in ns per unit.

    ``rounds``: each round's figure (the batch mean for batch-timed cases, the median operation for per-operation
    cases); ``means``: each round's batch mean; ``samples``: every operation, for per-operation cases.
    """

    case: Case
    rounds: list[float] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)

    @property
    def median_ns(self) -> float:
        """Median over the rounds of ns per unit."""
        return statistics.median(self.rounds)

    @property
    def spread(self) -> float:
        """Interquartile range of the rounds over their median: how noisy this row was (0.1 = 10 %)."""
        if len(self.rounds) < 2 or not self.median_ns:
            return 0.0
        low, _, high = statistics.quantiles(self.rounds, n=4, method="inclusive")
        return (high - low) / self.median_ns


def measure(cases: Sequence[Case], rounds: int) -> dict[str, Measurement]:
    """Warm every case up (a tenth of a batch), then run ``rounds`` rounds of one batch per case.

    The order rotates each round, so no case always runs first (right after another case's work). A case with
    ``batch_ns`` gets its batch size from its warm-up (see :class:`Case`).
    """
    for case in cases:
        warmup = max(1, case.ops // 10)
        spent = case.run(warmup).total_ns
        if case.batch_ns is not None:
            fitting = int(case.batch_ns * warmup / max(spent, 1))
            case.ops = min(case.ops, max(_MIN_BATCH, fitting))
    found = {case.id: Measurement(case) for case in cases}
    for number in range(rounds):
        shift = number % len(cases)
        for case in [*cases[shift:], *cases[:shift]]:
            batch = case.run(case.ops)
            result = found[case.id]
            mean = batch.total_ns / batch.ops / case.per
            result.means.append(mean)
            if batch.samples is None:
                result.rounds.append(mean)
            else:
                # The round's median operation: a scheduler stall (another process on the shared cores) moves
                # a mean by milliseconds but leaves the median where the operation's own cost is.
                result.rounds.append(statistics.median(batch.samples) / case.per)
                result.samples.extend(sample / case.per for sample in batch.samples)
    return found


def paired_ratio(row: Measurement, reference: Measurement) -> float:
    """Median over the rounds of ``row / reference`` within each round (both measured in one group)."""
    pairs = [a / b for a, b in zip(row.rounds, reference.rounds, strict=True) if b > 0]
    return statistics.median(pairs) if pairs else float("nan")


@dataclass
class Row:
    """One reported timing row (all times in ns per unit)."""

    id: str
    label: str
    median_ns: float
    ops_per_s: float
    rounds: int
    ops_per_round: int
    spread: float
    p50_ns: float | None = None
    p90_ns: float | None = None
    p99_ns: float | None = None
    reference: str | None = None
    reference_label: str | None = None
    ratio: float | None = None
    ratios: dict[str, float] = field(default_factory=dict)
    target: float | None = None
    status: str | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data."""
        return {
            "id": self.id, "label": self.label, "median_ns": self.median_ns, "ops_per_s": self.ops_per_s,
            "p50_ns": self.p50_ns, "p90_ns": self.p90_ns, "p99_ns": self.p99_ns, "rounds": self.rounds,
            "ops_per_round": self.ops_per_round, "spread": self.spread, "reference": self.reference,
            "ratio": self.ratio, "ratios": dict(self.ratios),
            "target": None if self.target is None else {"max_ratio": self.target, "vs": self.reference},
            "status": self.status, "note": self.note, **self.extra,
        }


def _percentiles(samples: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    if len(samples) < 10:
        return None, None, None
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49], cuts[89], cuts[98]


def _figure(measured: Measurement) -> float:
    """The ns per unit a row shows: the pooled p50 of a per-operation row, else the median over the rounds."""
    p50 = _percentiles(measured.samples)[0]
    return measured.median_ns if p50 is None else p50


def make_row(
    found: Mapping[str, Measurement],
    case_id: str,
    reference: str | None = None,
    *,
    also: Sequence[str] = (),
    target: float | None = None,
    note: str = "",
) -> Row:
    """Build the row of ``case_id`` from one :func:`measure` result, with ratios to rows of the same group.

    :param reference: the row it is compared with (its ``ratio``); ``None`` for a row compared with nothing.
    :param also: further rows to report a ratio against (in ``ratios``).
    :param target: the largest acceptable ``ratio``; ``status`` is ``PASS`` or ``MISS`` against it.
    """
    measured = found[case_id]
    p50, p90, p99 = _percentiles(measured.samples)
    # One figure per row: a per-operation row's median is its pooled p50, so the two columns never disagree.
    median = measured.median_ns if p50 is None else p50
    row = Row(
        id=case_id, label=measured.case.label, median_ns=median, ops_per_s=1e9 / median if median else 0.0,
        rounds=len(measured.rounds), ops_per_round=measured.case.ops * measured.case.per, spread=measured.spread,
        p50_ns=p50, p90_ns=p90, p99_ns=p99, note=note or measured.case.note,
        extra={"mean_ns": statistics.median(measured.means), "timing": "per-op" if measured.samples else "batch"},
    )
    for other in [reference, *also]:
        if other is not None and other in found:
            # The ratio of the figures shown, so a reader can check it; the per-round pairing (robust to drift
            # when the rows were not interleaved) stays in the JSON as ``paired_ratios``.
            row.ratios[other] = median / _figure(found[other]) if _figure(found[other]) else float("nan")
            row.extra.setdefault("paired_ratios", {})[other] = paired_ratio(measured, found[other])
    if reference is not None and reference in found:
        row.reference, row.reference_label = reference, found[reference].case.label
        row.ratio = row.ratios[reference]
        if target is not None:
            row.target = target
            row.status = "PASS" if row.ratio <= target else "MISS"
    return row


@dataclass
class Outcome:
    """A result that is not a timing (a hit rate, a count of stale reads), with its target if any."""

    id: str
    label: str
    value: float
    unit: str = ""
    target: str | None = None
    status: str | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The outcome as JSON-ready data."""
        return {"id": self.id, "label": self.label, "value": self.value, "unit": self.unit,
                "target": self.target, "status": self.status, "note": self.note}


@dataclass
class Section:
    """One part of the benchmark (memory, drivers, plugin): its rows, outcomes, notes and skipped rows."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The section as JSON-ready data."""
        return {
            "title": self.title, "seconds": self.seconds, "rows": [row.as_dict() for row in self.rows],
            "outcomes": [outcome.as_dict() for outcome in self.outcomes], "notes": list(self.notes),
            "skipped": list(self.skipped),
        }
