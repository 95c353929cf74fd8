"""Type checkers reject wrong calls of decorated functions: ``tests/typing/wrong_calls.py`` under both checkers.

Every line of that file marked ``# error`` must be reported, and no other line: a typing layer that made the
decorated callables ``Any`` would pass ``decorators_typing.py`` less often than one might hope, and fails here.
The positive checks (``tests/typing/decorators_typing.py``, no ``type: ignore``) run in ``.ci/test``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import unavailable

ROOT = Path(__file__).resolve().parents[2]
WRONG_CALLS = ROOT / "tests" / "typing" / "wrong_calls.py"
pytestmark = pytest.mark.slow


def _expected_lines() -> set[int]:
    lines = WRONG_CALLS.read_text().splitlines()
    return {number for number, line in enumerate(lines, 1) if line.rstrip().endswith("# error")}


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed (pip install 'cachekit-orm[test]')")
    assert found is not None
    return found


def test_the_file_marks_enough_errors() -> None:
    assert len(_expected_lines()) >= 20


def test_mypy_reports_exactly_the_marked_lines() -> None:
    result = subprocess.run(
        [_tool("mypy"), "--strict", "--no-error-summary", "--hide-error-context", "--no-incremental",
         str(WRONG_CALLS.relative_to(ROOT))],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    reported = {int(m) for m in re.findall(r"^tests/typing/wrong_calls\.py:(\d+): error:", result.stdout, re.M)}
    assert reported, result.stdout + result.stderr
    assert reported == _expected_lines(), result.stdout


def test_pyright_reports_exactly_the_marked_lines() -> None:
    if shutil.which("node") is None:
        unavailable("pyright needs node on PATH")
    result = subprocess.run(
        [_tool("pyright"), "--outputjson", str(WRONG_CALLS)],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    diagnostics = json.loads(result.stdout)["generalDiagnostics"]
    reported = {d["range"]["start"]["line"] + 1 for d in diagnostics if d["severity"] == "error"}
    assert reported == _expected_lines(), result.stdout
