"""Smoke test of ``cachekit bench``: it runs, prints its table and writes well-formed JSON.

No timing is asserted here (speed lives in the benchmark itself); only the shape of the report and that every
measured figure and ratio is a positive number.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cachekit._tools.bench import SECTIONS, main
from cachekit._tools.bench import run as run_bench
from cachekit._tools.bench._async import instruction_child
from cachekit._tools.bench._instructions import count_instructions, project_root


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """One quick run of the memory section (about a second): (the JSON report, the printed tables)."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["--quick", "--only", "memory", "--json", str(path)]) == 0
    return json.loads(path.read_text(encoding="utf-8")), printed.getvalue()


@pytest.fixture
def report(run: tuple[dict[str, Any], str]) -> dict[str, Any]:
    return run[0]


def test_report_has_machine_info_and_only_the_chosen_section(report: dict[str, Any]) -> None:
    assert report["mode"] == "quick"
    assert list(report["sections"]) == ["memory"]
    machine = report["machine"]
    assert machine["cpu_count"] >= 1
    assert machine["python_version"].count(".") == 2
    assert machine["platform"]
    assert machine["cpu_model"]
    assert set(machine) >= {"load_average_start", "load_average_end", "packages"}
    assert report["method"]["settings"]["mode"] == "quick"


def test_memory_rows_have_positive_figures_and_ratios(report: dict[str, Any]) -> None:
    rows = {row["id"]: row for row in report["sections"]["memory"]["rows"]}
    assert {"plain", "cachekit_objects", "cachekit_msgpack"} <= set(rows)
    for row in rows.values():
        assert _positive(row["median_ns"]), row
        assert _positive(row["ops_per_s"]), row
        assert row["rounds"] >= 3
        assert row["reference"] in rows
        assert _positive(row["ratio"]), row
        assert all(_positive(ratio) for ratio in row["ratios"].values()), row
        assert row["timing"] == "batch"
        assert row["p50_ns"] is None  # batch-timed rows report no per-call percentiles


def test_memory_targets_name_their_reference_and_get_a_verdict(report: dict[str, Any]) -> None:
    rows = {row["id"]: row for row in report["sections"]["memory"]["rows"]}
    if "cachetools_cached" not in rows:
        pytest.skip("cachetools is not installed: the memory targets are not checked")
    assert rows["cachekit_objects"]["target"] == {"max_ratio": 2.5, "vs": "cachetools_cached"}
    assert rows["cachekit_msgpack"]["target"] == {"max_ratio": 6.0, "vs": "cachetools_cached"}
    for row_id in ("cachekit_objects", "cachekit_msgpack"):
        row = rows[row_id]
        assert row["status"] == ("PASS" if row["ratio"] <= row["target"]["max_ratio"] else "MISS")
        if "cachebox_cached" in rows:
            assert _positive(row["ratios"]["cachebox_cached"])


def test_table_is_printed_with_a_verdict_per_target(run: tuple[dict[str, Any], str]) -> None:
    report, printed = run
    assert "Memory decorator hit" in printed
    assert "cachekit @cached" in printed
    if "cachetools_cached" in {row["id"] for row in report["sections"]["memory"]["rows"]}:
        assert printed.count("PASS") + printed.count("MISS") >= 2


def test_unknown_section_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--only", "memory,disk"]) == 2
    message = capsys.readouterr().err
    assert message.startswith("cachekit bench: error:")
    assert "'memory,disk'" in message
    assert all(name in message for name in SECTIONS)


def test_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cachekit._tools.bench", "--help"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--only" in result.stdout
    assert "--quick" in result.stdout


def test_memory_rows_say_when_instructions_were_not_counted(report: dict[str, Any]) -> None:
    rows = report["sections"]["memory"]["rows"]
    assert all(row["instructions"] is None for row in rows)  # --quick counts none
    assert any("instructions per hit: n/a" in note for note in report["sections"]["memory"]["notes"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counts_come_from_callgrind() -> None:
    counted = count_instructions(["plain"], 5000)  # two short callgrind runs (~10 s): the cheapest real check
    # (5,000 hits: the measured difference, ~3M instructions, dwarfs the start-up noise between the two runs)
    assert isinstance(counted, dict), counted
    # A plain method call costs a few hundred instructions (583 on CPython 3.11), never thousands.
    assert 100 < counted["plain"] < 3000


@pytest.mark.redis
def test_async_section_compares_cachekit_with_raw_redis_asyncio(redis_url: str) -> None:
    report = run_bench(["async"], quick=True, redis_url=redis_url)
    section = report["sections"]["async"]
    rows = {row["id"]: row for row in section["rows"]}
    assert set(rows) == {f"async_{group}_{kind}" for group in ("seq", "gather") for kind in ("raw", "cachekit",
                                                                                           "to_thread")}
    for group in ("seq", "gather"):
        row = rows[f"async_{group}_cachekit"]
        assert row["reference"] == f"async_{group}_raw"
        assert row["target"] == {"max_ratio": 1.2, "vs": f"async_{group}_raw"}
        assert row["status"] == ("PASS" if row["ratio"] <= 1.2 else "MISS")
        assert _positive(row["median_ns"])
        assert _positive(row["p99_ns"])
        assert row["timing"] == "per-op"
    assert rows["async_gather_cachekit"]["ops_per_round"] % 50 == 0  # gather rows are reported per call
    assert section["skipped"] == []


@pytest.mark.redis
@pytest.mark.parametrize("row_id", ["async_seq_raw", "async_seq_cachekit"])
def test_the_async_instruction_child_runs_its_hits(redis_url: str, redis_prefix: str, row_id: str) -> None:
    import redis

    instruction_child(row_id, 5, 2, redis_url, redis_prefix)  # what callgrind runs, here without it
    with redis.Redis.from_url(redis_url) as client:
        stored = {key.decode() for key in client.scan_iter(match=redis_prefix + "*")}
    assert redis_prefix + "iraw:hit" in stored
    assert any(key.startswith(redis_prefix + "ick:") for key in stored)  # the cachekit entry it hit


def test_the_instruction_child_runs_the_cachekit_being_benchmarked() -> None:
    import cachekit

    assert (project_root() / "cachekit" / "__init__.py").resolve() == Path(cachekit.__file__).resolve()


def test_the_memory_instruction_child_looks_the_method_up_on_every_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The instruction rows count what a caller pays: ``repo.get("u1")``, the binding included (hoisting the
    lookup out of the loop hid about 1,500 instructions of cachekit's binding that cachetools does not pay)."""
    from cachekit._tools.bench import _child, _memory

    lookups = []

    class Counted:
        def __getattribute__(self, name: str) -> Any:
            lookups.append(name)
            return lambda id: id

    monkeypatch.setattr(_memory, "contender", lambda row_id: Counted())
    monkeypatch.setattr(sys, "argv", ["child", "cachekit_objects", "7"])
    _child.child()
    assert lookups == ["get"] * (_child._WARMUP + 7)
