"""``cachekit bench``: its outputs checked before the work, a table that agrees with itself (issue 20, defect 4),
and advice that names the ``bench`` extra (defect 5).

Nothing here times anything: the rows are built from made-up measurements, and sections are replaced by fakes.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import cachekit._tools.bench
from cachekit._tools.bench._core import Batch, Case, Measurement, Section, Settings, make_row, measure
from cachekit._tools.bench._report import print_section
from cachekit._tools.bench._scale import _sizes


def _replay(*rounds: Sequence[int]) -> Case:
    """A per-operation case whose batches are ``rounds`` (one list of ns per operation each), after a warm-up."""
    batches = iter([[1], *rounds])

    def run(ops: int) -> Batch:
        samples = list(next(batches))
        return Batch(sum(samples), len(samples), samples)

    return Case(id="", label="", run=run, ops=len(rounds[0]))


def _cases() -> dict[str, Case]:
    # Round medians 1, 2, 3 (their median: 2), but pooled, the p50 of every operation is 3.
    slow = _replay([1] * 6 + [100] * 5, [2] * 6 + [100] * 5, [3] * 6 + [100] * 5)
    # Round medians 1, 1, 1; every round's ratio slow / fast is 1, 2, 3.
    fast = _replay([1] * 11, [1] * 11, [1] * 11)
    slow.id, slow.label, fast.id, fast.label = "slow", "slow row", "fast", "fast row"
    return {"slow": slow, "fast": fast}


def _measured() -> dict[str, Measurement]:
    found: dict[str, Measurement] = {}
    for case in _cases().values():  # each replays its own batches: measure them one at a time
        found.update(measure([case], rounds=3))
    return found


def test_a_per_operation_row_shows_one_median() -> None:
    row = make_row(_measured(), "slow")
    assert row.p50_ns == 3
    assert row.median_ns == row.p50_ns


def test_the_ratio_is_the_ratio_of_the_figures_shown() -> None:
    found = _measured()
    slow, fast = make_row(found, "slow", "fast", target=2.5), make_row(found, "fast")
    assert slow.ratio == pytest.approx(slow.median_ns / fast.median_ns) == 3
    assert slow.status == "MISS"  # judged on the ratio shown (3), not the median of the per-round ratios (2)


def test_small_ratios_print_without_an_exponent() -> None:
    found = _measured()
    row = make_row(found, "fast", "slow")
    row.ratio = row.ratios["slow"] = 4e-05
    section = Section("memory", "made up", rows=[row])
    out = io.StringIO()
    print_section(section, out)
    assert "0.000040x slow" in out.getvalue()
    assert "e-05" not in out.getvalue()


def test_every_quick_scale_row_compares_two_sizes() -> None:
    quick = Settings.quick()
    for driver in ("memory", "filesystem", "redis", "s3"):
        sizes = _sizes(driver, quick)
        assert len(set(sizes)) >= 2, (driver, sizes)


def test_an_unwritable_json_path_is_refused_before_the_work(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def no_work(*args: object, **kwargs: object) -> dict[str, object]:
        raise AssertionError("the benchmark ran before its output was checked")

    monkeypatch.setattr(cachekit._tools.bench, "run", no_work)
    for target, reason in ((tmp_path / "missing" / "x.json", "does not exist"), (tmp_path, "is a directory")):
        assert cachekit._tools.bench.main(["--quick", "--only", "memory", "--json", str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1
        assert err[0].startswith("cachekit bench: error: --json ")
        assert reason in err[0]
    assert not (tmp_path / "missing").exists()


def test_progress_is_shown_as_sections_start_and_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake_runner(name: str) -> object:
        return lambda settings, services: Section(name, f"fake {name}")

    monkeypatch.setattr(cachekit._tools.bench, "_runner", fake_runner)
    assert cachekit._tools.bench.main(["--quick", "--only", "memory,plugin"]) == 0
    err = capsys.readouterr().err
    assert "[1/2] memory ..." in err
    assert "[2/2] plugin ..." in err
    assert err.index("[1/2] memory") < err.index("[2/2] plugin")


def test_bench_without_its_libraries_names_the_bench_extra() -> None:
    blocker = (  # a core install: diskcache cannot be imported
        "import sys\n"
        "sys.modules['diskcache'] = None\n"
        "from cachekit._tools.cli import main\n"
        "sys.exit(main(['bench', '--quick', '--only', 'memory']))\n"
    )
    result = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL, check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert "cachekit-orm[bench]" in last, result.stderr
    assert "[filesystem]" not in result.stderr


