"""``@invalidates(before=lambda self, id, data: ...)``, the README's pattern, is clean under pyright strict and mypy
--strict (issue 20, defect 7: pyright strict found 7 errors per use, every lambda parameter unknown)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.servers import unavailable
from tests.unit.test_typing import ROOT, _tool

FILE = ROOT / "tests" / "typing" / "invalidates_before.py"
pytestmark = pytest.mark.slow


def test_pyright_strict_finds_nothing_to_report() -> None:
    if shutil.which("node") is None:
        unavailable("pyright needs node on PATH")
    result = subprocess.run([_tool("pyright"), "--outputjson", str(FILE)], capture_output=True, text=True,
                            cwd=ROOT, timeout=300, check=False)
    report = json.loads(result.stdout)
    errors = [(d["range"]["start"]["line"] + 1, d["message"]) for d in report["generalDiagnostics"]
              if d["severity"] == "error"]
    assert errors == []


def test_mypy_strict_finds_nothing_to_report() -> None:
    result = subprocess.run([_tool("mypy"), "--strict", "--no-incremental", str(Path(FILE).relative_to(ROOT))],
                            capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
