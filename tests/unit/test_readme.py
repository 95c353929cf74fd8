"""The README's repository snippet runs as written, in a fresh interpreter, as a new user would run it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_blocks_after(heading: str) -> list[str]:
    text = README.read_text()
    section = text.split(heading, 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_repository_snippet_runs() -> None:
    (snippet,) = _python_blocks_after("### 1. Decorate your own repository class")
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "cachekit/resource=users/action=get/" in result.stdout


def test_two_commands_are_the_ones_ci_runs() -> None:
    text = README.read_text()
    assert "bash .ci/test" in text
    assert "bash .ci/test" in (README.parent / ".ci" / "run").read_text()
    assert ".venv/bin/cachekit demo" in text


def test_signing_and_rotation_snippet_runs() -> None:
    (snippet,) = _python_blocks_after("### Shared caches: untrusted bytes, signing and key rotation")
    result = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
