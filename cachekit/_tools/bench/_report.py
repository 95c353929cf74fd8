"""Machine facts, the printed tables (rich when installed, plain text otherwise) and the JSON report."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from ._core import Outcome, Row, Section

__all__ = ["format_ns", "machine_info", "print_section", "write_json"]

_PACKAGES = ("cachekit-orm", "msgpack", "wrapt", "cachetools", "cachebox", "diskcache", "redis", "hiredis", "boto3",
             "moto", "rich")
_HEADERS = ("row", "median/op", "p50 / p90 / p99", "ops/s", "instr/op", "ratio (same run)", "target", "result")
_OUTCOME_HEADERS = ("result", "value", "detail", "target", "result")
_STYLES = {"PASS": "[green]PASS[/]", "MISS": "[bold red]MISS[/]"}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    """The 1/5/15-minute load averages, where the platform has them."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine_info() -> dict[str, Any]:
    """CPU, Python build, platform, load and the versions of the libraries measured."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    versions: dict[str, str | None] = {}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu_count": os.cpu_count(), "cpu_affinity": affinity, "cpu_model": _cpu_model(),
        "python_version": platform.python_version(), "python_implementation": platform.python_implementation(),
        "python_build": " ".join(platform.python_build()), "platform": platform.platform(),
        "load_average_start": load_average(), "packages": versions,
    }


def format_ns(ns: float | None) -> str:
    """``123.4 ns``, ``12.3 µs``, ``4.56 ms``."""
    if ns is None:
        return "-"
    if ns < 1_000:
        return f"{ns:.1f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.2f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def _format_rate(per_second: float) -> str:
    for scale, suffix in ((1e6, " M/s"), (1e3, " k/s")):
        if per_second >= scale:
            return f"{per_second / scale:.2f}{suffix}"
    return f"{per_second:.0f} /s"


def _format_ratio(ratio: float) -> str:
    """``1.26x``, ``0.042x``, ``0.000040x``: two significant figures below 0.1, never an exponent."""
    if not math.isfinite(ratio) or ratio <= 0:
        return "-"
    if ratio >= 0.1:
        return f"{ratio:,.2f}x"
    decimals = 1 - math.floor(math.log10(ratio))
    return f"{ratio:.{decimals}f}x"


def _ratio_text(row: Row) -> str:
    if row.ratio is None or row.reference == row.id:
        return "reference" if row.reference == row.id else "-"
    lines = [f"{_format_ratio(row.ratio)} {row.reference}"]
    lines += [f"{_format_ratio(ratio)} {other}" for other, ratio in row.ratios.items() if other != row.reference]
    if "speedup" in row.extra:
        lines.append(f"speed-up {row.extra['speedup']:,.0f}x")
    return "\n".join(lines)


def _row_cells(row: Row) -> list[str]:
    spread = f" (±{row.spread / 2:.0%})"
    percentiles = "-" if row.p50_ns is None else " / ".join(format_ns(v) for v in (row.p50_ns, row.p90_ns, row.p99_ns))
    target = "-" if row.target is None else f"≤ {row.target:g}x"
    return [row.label, format_ns(row.median_ns) + spread, percentiles, _format_rate(row.ops_per_s),
            _instructions_text(row), _ratio_text(row), target, row.status or "-"]


def _instructions_text(row: Row) -> str:
    """Instructions per operation (valgrind), ``n/a`` when they could not be counted, ``-`` for untracked rows."""
    if "instructions" not in row.extra:
        return "-"
    count = row.extra["instructions"]
    if count is None:
        return "n/a"
    ratios = row.extra.get("instructions_ratio") or {}
    return f"{count:,}" + "".join(f"\n{ratio:.2f}x {other}" for other, ratio in ratios.items())


def _outcome_cells(outcome: Outcome) -> list[str]:
    value = f"{outcome.value:.1%}" if outcome.unit == "ratio" else f"{outcome.value:g} {outcome.unit}"
    return [outcome.label, value, outcome.note, outcome.target or "-", outcome.status or "-"]


def print_section(section: Section, stream: TextIO | None = None) -> None:
    """Print one section's tables (timings, then other results), then its notes and skipped rows."""
    out = stream or sys.stdout
    tables: list[tuple[str, Sequence[str], list[list[str]]]] = [
        (section.title, _HEADERS, [_row_cells(row) for row in section.rows])
    ]
    if section.outcomes:
        tables.append((f"{section.title}: results", _OUTCOME_HEADERS, [_outcome_cells(o) for o in section.outcomes]))
    footer = [f"note: {note}" for note in section.notes] + [f"skipped: {skip}" for skip in section.skipped]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        _print_plain(tables, footer, out)
        return
    console = Console(file=out, width=max(160, Console(file=out).width))
    for title, headers, body in tables:
        if not body:
            continue
        table = Table(title=title, title_justify="left", show_lines=True)
        for header in headers:
            right = header in ("median/op", "ops/s", "value", "instr/op")
            table.add_column(header, justify="right" if right else "left", no_wrap=right)
        for cells in body:
            table.add_row(*cells[:-1], _STYLES.get(cells[-1], cells[-1]))
        console.print(table)
    for line in footer:
        console.print(line, highlight=False, markup=False)


def _print_plain(
    tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[str]]]], footer: Sequence[str], out: TextIO
) -> None:
    for title, headers, body in tables:
        print(f"\n{title}", file=out)
        for cells in [list(headers), *body]:
            print(" | ".join(cell.replace("\n", "; ") for cell in cells), file=out)
    for line in footer:
        print(line, file=out)


def write_json(path: str, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON (``-`` for stdout)."""
    text = json.dumps(report, indent=2, sort_keys=False, allow_nan=False, default=str)
    if path == "-":
        print(text)
        return
    Path(path).write_text(text + "\n", encoding="utf-8")
