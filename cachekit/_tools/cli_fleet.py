"""``cachekit stats --fleet``: the hit rate per namespace, resource and action, summed over every process.

Processes whose caches are built with ``publish_stats`` (:mod:`cachekit.fleet`) write their counters to the shared
backend; this command reads them all back and sums them. ``--json`` prints one object (:meth:`Fleet.as_dict
<cachekit.fleet.Fleet.as_dict>`); ``--watch`` redraws a rich table every ``--interval`` seconds, with the hit rate
and reads per second *since the previous refresh* next to the totals (records change once per publishing interval
of each process, so these move in steps). A memory cache has no fleet: exit status 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from ..errors import ConfigurationError
from ..fleet import Fleet, read_fleet
from .cli_cache import CacheView, UsageError
from .cli_watch import refresh_loop

__all__ = ["recent_rates", "run_fleet"]

_Labels = tuple[str, str, str]


def _read(view: CacheView) -> Fleet:
    namespace = view.cache.namespace if view.cache is not None else None
    try:
        fleet = read_fleet(view.driver, namespace)
    except ConfigurationError as exc:
        raise UsageError(f"stats --fleet: {exc}") from exc
    if view.resource:  # the namespace totals stay whole: they are not kept per resource
        fleet.records = [dataclasses.replace(record, rows=tuple(row for row in record.rows if row[0] == view.resource))
                         for record in fleet.records]
    return fleet


def _per_process(fleet: Fleet) -> dict[tuple[str, _Labels], tuple[int, int]]:
    return {(record.process, (record.namespace, row[0], row[1])): (row[2], row[3])
            for record in fleet.records for row in record.rows}


def recent_rates(
    now: dict[tuple[str, _Labels], tuple[int, int]],
    before: dict[tuple[str, _Labels], tuple[int, int]] | None,
    seconds: float,
) -> dict[_Labels, tuple[float | None, float]]:
    """Per row: ``(hit rate, reads per second)`` since the previous refresh, from each process's change.

    A process seen for the first time adds nothing (its counts cover its whole life), one that went away neither;
    counters that went down (a restarted process cannot, it has a new id) are ignored.
    """
    if before is None or seconds <= 0:
        return {}
    deltas: dict[_Labels, list[int]] = {}
    for (process, labels), (hits, misses) in now.items():
        old = before.get((process, labels))
        if old is None or hits < old[0] or misses < old[1]:
            continue
        into = deltas.setdefault(labels, [0, 0])
        into[0] += hits - old[0]
        into[1] += misses - old[1]
    return {labels: ((h / (h + m)) if h + m else None, (h + m) / seconds) for labels, (h, m) in deltas.items()}


def _table(view: CacheView, fleet: Fleet, rates: dict[_Labels, tuple[float | None, float]], live: bool) -> Any:
    from rich.table import Table

    processes = len({record.process for record in fleet.records})
    caption = f"{processes} process(es) publishing to {view.driver.name}"
    if fleet.invalid:
        caption += f"; {len(fleet.invalid)} record(s) refused (see --json)"
    if fleet.skipped:
        caption += f"; {fleet.skipped} record(s) past the first {len(fleet.records) + len(fleet.invalid)} not read"
    for total in fleet.namespaces():  # the freshness policies (issue 21), where some process has them
        if total.get("stale_served") or total.get("stale_on_error") or total.get("refreshes_started"):
            caption += (f"; {total['namespace']}: {total['stale_served']:,} stale served, {total['stale_on_error']:,} "
                        f"on error, {total['refreshes_started']:,} refreshes ({total['refreshes_failed']:,} failed, "
                        f"{total['early_refreshes']:,} early)")
    if live:
        caption += "; 'recent' is since the previous refresh. Ctrl-C to stop"
    table = Table(title="cachekit fleet: hit rate per namespace, resource and action", caption=caption)
    for name in ("namespace", "resource", "action"):
        table.add_column(name)
    for name in ("processes", "hits", "misses", "hit rate", *(("recent", "reads/s") if live else ())):
        table.add_column(name, justify="right")
    for row in fleet.rows():
        cells = [row["namespace"], row["resource"] or "(own keys)", row["action"] or "-", str(row["processes"]),
                 f"{row['hits']:,}", f"{row['misses']:,}", f"{row['hit_rate']:.1%}"]
        if live:
            recent, per_second = rates.get((row["namespace"], row["resource"], row["action"]), (None, 0.0))
            cells += ["-" if recent is None else f"{recent:.1%}", f"{per_second:,.1f}"]
        table.add_row(*cells)
    table.add_section()
    for total in fleet.namespaces():
        cells = [total["namespace"], "(all reads)", "", str(total["processes"]), f"{total['hits']:,}",
                 f"{total['misses']:,}", f"{total['hit_rate']:.1%}"]
        table.add_row(*cells, *(("", "") if live else ()))
    return table


def run_fleet(
    view: CacheView,
    *,
    as_json: bool = False,
    watch: bool = False,
    interval: float = 1.0,
    iterations: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the fleet's numbers once, or every ``interval`` seconds with ``watch`` (``iterations`` times)."""
    if not as_json:
        try:
            import rich  # noqa: F401
        except ImportError as exc:
            raise UsageError("cachekit stats --fleet draws a rich table: pip install 'cachekit-orm[cli]', "
                             "or pass --json") from exc
    if not watch:
        fleet = _read(view)
        if as_json:
            print(json.dumps(fleet.as_dict(), indent=2, sort_keys=True))
        else:
            from rich.console import Console

            Console().print(_table(view, fleet, {}, live=False))
        if not fleet.records:
            print(f"cachekit: no process publishes stats to this {view.driver.name} backend "
                  "(build the caches with publish_stats=True)", file=sys.stderr)
        return 0

    def refresh(before: dict[tuple[str, _Labels], tuple[int, int]] | None,
                seconds: float) -> tuple[dict[tuple[str, _Labels], tuple[int, int]], Any]:
        fleet = _read(view)
        counts = _per_process(fleet)
        rates = recent_rates(counts, before, seconds)
        if as_json:
            recent = [{"namespace": n, "resource": r, "action": a, "recent_hit_rate": rate, "reads_per_second": rps}
                      for (n, r, a), (rate, rps) in sorted(rates.items())]
            print(json.dumps({**fleet.as_dict(), "recent": recent}, sort_keys=True), flush=True)
            return counts, None
        return counts, _table(view, fleet, rates, live=True)

    return refresh_loop(refresh, command="cachekit stats --fleet --watch", as_json=as_json, interval=interval,
                        iterations=iterations, clock=clock, sleep=sleep)
