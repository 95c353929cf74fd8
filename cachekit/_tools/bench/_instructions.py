"""Instructions per hit, counted by valgrind's callgrind: a figure that a noisy, shared machine cannot move.

For each hit-path row, a child process builds the same repository as the timed row, warms it up, then runs N
hits; it runs twice under ``valgrind --tool=callgrind`` (0 hits and N hits, same imports and warm-up), and
(instructions(N) - instructions(0)) / N is the cost of one hit. Children run two at a time (counts do not
depend on load). Without valgrind, or with ``--no-instructions`` (the default of ``--quick``), the column
reads ``n/a`` or ``-`` and the instruction targets are not checked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ._core import Outcome, Section, Settings

__all__ = [
    "INSTRUCTION_TARGETS",
    "add_instruction_counts",
    "callgrind_instructions",
    "count_instructions",
    "instructions_off",
    "project_root",
]

#: Row id -> the largest instructions ratio to cachetools ``@cachedmethod`` (issue 22; issue 11 asked 1.3x / 2.5x).
INSTRUCTION_TARGETS = {"cachekit_objects": 1.0, "cachekit_msgpack": 1.5}
_REFERENCE = "cachetools_cachedmethod"
_CHILD = "from cachekit._tools.bench._child import child; child()"
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")
_TIMEOUT = 600.0


def project_root() -> Path:
    """The directory holding the ``cachekit`` package being benchmarked (put first on the child's path)."""
    return Path(__file__).resolve().parents[3]  # cachekit/_tools/bench/_instructions.py


def callgrind_instructions(python_args: Sequence[str], *, env: Mapping[str, str] | None = None,
                           valgrind: str = "valgrind") -> int:
    """The instructions valgrind's callgrind collects running ``python *python_args`` (``RuntimeError`` with the
    last line of its output when the run fails). The hit-cost scripts take one hit's cost as the difference of a
    child run with N hits and with 0."""
    result = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, *python_args],
        capture_output=True, text=True, env=None if env is None else dict(env), timeout=_TIMEOUT, check=False,
    )
    found = _COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        tail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"callgrind run of {' '.join(python_args[2:4])} failed (status {result.returncode}): {tail}")
    return int(found.group(1))


def _collected(valgrind: str, row_id: str, hits: int, args: Sequence[str]) -> int:
    root = str(project_root())
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get(
        "PYTHONPATH")]))}
    return callgrind_instructions(["-c", _CHILD, row_id, str(hits), *args], env=env, valgrind=valgrind)


def count_instructions(row_ids: Sequence[str], hits: int, args: Sequence[str] = ()) -> dict[str, float] | str:
    """Instructions per hit for each row id, or the reason there are none (no valgrind, a failed run).

    ``args`` go to every child after the row id and the hit count (the async rows' Redis URL and key prefix).
    """
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return "valgrind is not installed (apt-get install valgrind)"
    jobs = [(row_id, n) for row_id in row_ids for n in (0, hits)]
    try:
        with ThreadPoolExecutor(2) as pool:
            counts = list(pool.map(lambda job: _collected(valgrind, job[0], job[1], args), jobs))
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return {row_id: (counts[2 * i + 1] - counts[2 * i]) / hits for i, row_id in enumerate(row_ids)}


def instructions_off() -> str:
    """Why a run has no instruction counts when they were not asked for."""
    return "off (--no-instructions; --quick runs without them)"


def add_instruction_counts(section: Section, row_ids: Sequence[str], settings: Settings) -> None:
    """Put ``instructions`` (per hit, or ``None``) on the section's rows, and the instruction targets' outcomes."""
    counted: dict[str, float] | str
    if not settings.instructions:
        counted = instructions_off()
    else:
        counted = count_instructions(row_ids, settings.instruction_hits)
    rows = {row.id: row for row in section.rows}
    if isinstance(counted, str):
        for row in section.rows:
            row.extra["instructions"] = None
        section.notes.append(f"instructions per hit: n/a, {counted}")
        return
    for row_id, row in rows.items():
        row.extra["instructions"] = round(counted[row_id]) if row_id in counted else None
    reference = counted.get(_REFERENCE)
    section.notes.append(
        f"instructions per hit: valgrind callgrind, ({settings.instruction_hits:,} hits - 0 hits) / "
        f"{settings.instruction_hits:,}, PYTHONHASHSEED=0; repeatable to about 1 %"
    )
    if not reference:
        return
    for row_id, target in INSTRUCTION_TARGETS.items():
        if row_id in counted:
            ratio = counted[row_id] / reference
            rows[row_id].extra["instructions_ratio"] = {_REFERENCE: ratio}
            section.outcomes.append(Outcome(
                f"{row_id}_instructions", f"{rows[row_id].label}: instructions per hit vs cachetools @cachedmethod",
                round(ratio, 3), "x", f"≤ {target:g}x", "PASS" if ratio <= target else "MISS",
                f"{counted[row_id]:,.0f} vs {reference:,.0f}",
            ))
