"""The README's figures about this repository stay true (issue 20, defect 8: it said 1328 tests when 1956 ran)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_readme_test_count_is_within_a_fifth_of_the_collected_tests() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    claims = re.findall(r"pytest: (?:about )?([\d,]+) tests", text)
    assert len(claims) == 1, claims
    claimed = int(claims[0].replace(",", ""))
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:randomly"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)
    found = re.search(r"^(\d+) tests? collected", result.stdout, re.MULTILINE)
    assert found, result.stdout[-2000:] + result.stderr[-2000:]
    collected = int(found.group(1))
    assert abs(claimed - collected) <= collected / 5, f"README says {claimed} tests; {collected} are collected"
