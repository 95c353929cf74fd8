"""The output of ``cachekit demo``: the set-up lines, the latency and mixed-workload tables, and the verdict.

The home of everything the demo prints with ``rich`` once the phases of :mod:`cachekit._tools._demo_workload` are
done (and of the set-up lines printed before them). Durations are kept short enough for an 80-column table.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._demo_workload import DemoOptions, LatencyResult, percentile
from .workload import WorkloadResult

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["print_results", "print_setup"]


def print_setup(console: Console, options: DemoOptions, endpoint: str) -> None:
    """Say which S3 and which cache the run uses, before the progress bars start."""
    where = f"{endpoint} (moto, in this process)" if options.endpoint is None else endpoint
    size = "quick" if options.quick else "full"
    console.print(f"[bold]cachekit demo[/bold] ({size} run)")
    console.print(f"  S3: {where}, bucket {options.bucket!r}")
    if options.tiers is not None:
        names = " -> ".join(str(tier.get("driver")) for tier in options.tiers["drivers"])
        console.print(f"  cache: CachePlugin(drivers=[{names}]) in front of every resource", markup=False)
    else:
        console.print(f"  cache: CachePlugin(driver={options.driver!r}) in front of every resource")
    console.print()


def _duration(seconds: float, micro: str) -> str:
    """``3.65 ms``, ``44.3 ms``, ``12 µs``: short enough for an 80-column table."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} {micro}"
    milliseconds = seconds * 1e3
    return f"{milliseconds:.2f} ms" if milliseconds < 10 else f"{milliseconds:,.1f} ms"


def _latency_table(latencies: list[LatencyResult], micro: str) -> Any:
    from rich.table import Table

    table = Table(title="Cold reads (S3) vs warm reads (cache), time per call")
    for header in ("action", "read", "p50", "p90", "p99", "speed-up", "hit rate"):
        table.add_column(header, justify="left" if header in ("action", "read") else "right")
    for result in latencies:
        table.add_row(
            result.action, f"cold ({len(result.cold)})", *(_duration(percentile(result.cold, p), micro)
                                                          for p in (50, 90, 99)),
        )
        table.add_row(
            "", f"warm ({len(result.warm)})", *(_duration(percentile(result.warm, p), micro) for p in (50, 90, 99)),
            f"{result.speedup:,.0f}x", f"{result.warm_hit_rate:.1%}", end_section=True,
        )
    return table


def _mixed_table(mixed: Mapping[str, WorkloadResult]) -> Any:
    from rich.table import Table

    table = Table(title="Mixed workload: 90% reads, 10% writes")
    for header in ("invalidation", "operations", "reads/writes", "hit rate", "stale reads", "seconds"):
        table.add_column(header, justify="left" if header == "invalidation" else "right")
    for mode, result in mixed.items():
        table.add_row(
            mode,
            str(result.operations),
            f"{result.reads}/{result.writes}",
            f"{result.hit_rate:.1%}",
            str(len(result.stale_reads)),
            f"{result.seconds:.2f}",
        )
    return table


def print_results(
    console: Console, options: DemoOptions, latencies: list[LatencyResult], mixed: Mapping[str, WorkloadResult]
) -> bool:
    """Print the tables and summaries; return whether every read of the mixed workload was fresh."""
    console.print()
    micro = "µs" if console.encoding.lower().startswith("utf") else "us"
    console.print(_latency_table(latencies, micro))
    hits = sum(r.warm_hits for r in latencies)
    lookups = sum(r.warm_lookups for r in latencies)
    median = statistics.median(r.speedup for r in latencies)
    # highlight=False: rich's number highlighter would colour only the "1" of "1,535x".
    console.print(f"Warm reads: hit rate [bold]{hits / lookups if lookups else 0:.1%}[/bold] ({lookups} lookups); "
                  f"median speed-up [bold]{median:,.0f}x[/bold] over S3.", highlight=False)
    console.print()
    console.print(_mixed_table(mixed))
    from rich.markup import escape

    precise, whole = mixed["precise"], mixed["resource"]
    stale = precise.stale_reads + whole.stale_reads
    verdict = "no stale reads."
    if stale:
        verdict = f"[bold red]{len(stale)} stale reads![/bold red] The first: {escape(stale[0])}"
    console.print(
        f"Mixed workload hit rate: [bold]{precise.hit_rate:.1%}[/bold] with precise invalidation, "
        f"[bold]{whole.hit_rate:.1%}[/bold] when every write clears the resource; {verdict}",
        highlight=False,
    )
    if options.quick:
        console.print("[dim]A quick run: `cachekit demo` takes more samples.[/dim]")
    return not stale
