"""The ``cachekit`` command line, run as users run it: the installed console script in a subprocess.

A few cases that need a terminal (the confirmation prompt of ``clear``) call :func:`cachekit._tools.cli.main`
in-process.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cachekit import Cache
from cachekit._tools.cli import main
from tests.servers import MotoServer, free_port, unavailable


def _console_script() -> list[str]:
    """The ``cachekit`` script installed beside this interpreter (the venv), else on PATH, else ``-m``."""
    beside = Path(sys.executable).with_name("cachekit")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cachekit")
    return [found] if found else [sys.executable, "-m", "cachekit._tools.cli"]


CLI = _console_script()


def cachekit(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``cachekit ARGS`` with no terminal attached (stdin from /dev/null, output captured)."""
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
        env={**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"},
    )


def assert_error(result: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    """The command failed with ``status`` and exactly one ``cachekit: error:`` line on stderr."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cachekit: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""
    return lines[0]


def lines_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout.splitlines()


# -- a filesystem cache filled by an application ---------------------------------------------------------------


USERS = ["users/u0", "users/u1", "users/u2"]
ORDERS = ["orders/o1"]


@pytest.fixture
def fs_directory(tmp_path: Path) -> Path:
    directory = tmp_path / "cache"
    config = {"directory": str(directory)}
    with Cache(driver="filesystem", namespace="users", config=config) as users:
        for i in range(3):
            assert users.set(f"u{i}", {"id": i, "name": f"user {i}"})
    with Cache(driver="filesystem", namespace="orders", config=config) as orders:
        assert orders.set("o1", {"total": 12.5})
    return directory


@pytest.fixture
def fs_config(fs_directory: Path) -> str:
    return json.dumps({"directory": str(fs_directory)})


def test_keys_lists_a_filesystem_cache_one_key_a_line(fs_config: str) -> None:
    assert lines_of(cachekit("keys", "--driver", "filesystem", "--config", fs_config)) == sorted(ORDERS + USERS)
    assert lines_of(cachekit("keys", "--driver", "filesystem", "--config", fs_config, "--namespace", "users")) == USERS
    narrowed = cachekit("keys", "--driver", "filesystem", "--config", fs_config, "--namespace", "users",
                        "--prefix", "u1")
    assert lines_of(narrowed) == ["users/u1"]
    assert lines_of(cachekit("keys", "--driver", "filesystem", "--config", fs_config, "--prefix", "nothing/")) == []


def test_clear_removes_only_keys_under_the_prefix(fs_directory: Path, fs_config: str) -> None:
    result = cachekit("clear", "--driver", "filesystem", "--config", fs_config, "--namespace", "users", "--yes")
    assert lines_of(result) == ["Removed 3 keys of namespace 'users'."]
    assert lines_of(cachekit("keys", "--driver", "filesystem", "--config", fs_config)) == ORDERS
    with Cache(driver="filesystem", namespace="orders", config={"directory": str(fs_directory)}) as orders:
        assert orders.get("o1") == {"total": 12.5}  # the other namespace is intact and readable


def test_clear_without_yes_and_without_a_terminal_refuses(fs_config: str) -> None:
    result = cachekit("clear", "--driver", "filesystem", "--config", fs_config, "--prefix", "users/")
    assert_error(result, 2, "would remove 3 keys", "--yes")
    assert lines_of(cachekit("keys", "--driver", "filesystem", "--config", fs_config)) == sorted(ORDERS + USERS)


def test_stats_json_and_table(fs_config: str) -> None:
    result = cachekit("stats", "--driver", "filesystem", "--config", fs_config, "--namespace", "users", "--json")
    stats = json.loads(lines_of(result) and result.stdout)
    assert stats["driver"] == "filesystem"
    assert stats["size"] == 4
    assert stats["entries"] == 4
    assert stats["prefix"] == "users/"
    assert stats["keys_under_prefix"] == 3
    table = "\n".join(lines_of(cachekit("stats", "--driver", "filesystem", "--config", fs_config)))
    assert "filesystem cache" in table
    assert "volume_bytes" in table


def test_config_from_a_toml_file_that_names_the_driver(tmp_path: Path, fs_directory: Path) -> None:
    config = tmp_path / "cache.toml"
    config.write_text(f'driver = "filesystem"\ndirectory = {json.dumps(str(fs_directory))}\n', encoding="utf-8")
    assert lines_of(cachekit("keys", "--config", str(config), "--namespace", "orders")) == ORDERS


def test_config_from_a_json_file(tmp_path: Path, fs_config: str) -> None:
    config = tmp_path / "cache.json"
    config.write_text(fs_config, encoding="utf-8")
    assert lines_of(cachekit("keys", "--driver", "filesystem", "--config", str(config))) == sorted(ORDERS + USERS)


# -- a Redis cache -----------------------------------------------------------------------------------------------


@pytest.mark.redis
def test_keys_and_clear_on_redis(redis_url: str, redis_prefix: str) -> None:
    import redis

    options = {"url": redis_url, "key_prefix": redis_prefix}
    with Cache(driver="redis", namespace="users", config=options) as users:
        for i in range(3):
            users.set(f"u{i}", {"id": i})
    with Cache(driver="redis", namespace="orders", config=options) as orders:
        orders.set("o1", {"total": 1})
    config = json.dumps(options)
    assert lines_of(cachekit("keys", "--driver", "redis", "--config", config)) == sorted(ORDERS + USERS)
    result = cachekit("clear", "--driver", "redis", "--config", config, "--prefix", "users/", "--yes")
    assert lines_of(result) == ["Removed 3 keys under 'users/'."]
    assert lines_of(cachekit("keys", "--driver", "redis", "--config", config)) == ORDERS
    client = redis.Redis.from_url(redis_url)
    try:
        assert sorted(client.scan_iter(match=redis_prefix + "*")) == [f"{redis_prefix}orders/o1".encode()]
    finally:
        client.close()


@pytest.mark.redis
def test_unreachable_redis_is_one_line_and_status_1() -> None:
    config = json.dumps({"url": f"redis://127.0.0.1:{free_port()}/0", "connect_timeout": 1})
    assert_error(cachekit("keys", "--driver", "redis", "--config", config), 1, "unavailable")


# -- an S3 cache --------------------------------------------------------------------------------------------------


@pytest.mark.s3
def test_keys_stats_and_clear_on_s3(moto_server: MotoServer, s3_bucket: str) -> None:
    # The moto_server fixture put test credentials in os.environ; the subprocess inherits them.
    options = {"bucket": s3_bucket, "endpoint_url": moto_server.endpoint_url, "key_prefix": "app-cache/"}
    with Cache(driver="s3", namespace="users", config=options) as users:
        for i in range(3):
            users.set(f"u{i}", {"id": i})
    config = json.dumps(options)
    assert lines_of(cachekit("keys", "--driver", "s3", "--config", config)) == USERS
    stats = json.loads(cachekit("stats", "--driver", "s3", "--config", config, "--json").stdout)
    assert (stats["driver"], stats["bucket"], stats["size"]) == ("s3", s3_bucket, 3)
    result = cachekit("clear", "--driver", "s3", "--config", config, "--prefix", "users/u1", "--yes")
    assert lines_of(result) == ["Removed 1 key under 'users/u1'."]
    assert lines_of(cachekit("keys", "--driver", "s3", "--config", config)) == ["users/u0", "users/u2"]


# -- errors --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ('{"directory": ', "not valid JSON"),
        ("[1, 2]", "must hold an object"),
        ("missing.json", "file not found: missing.json"),
        ("missing.toml", "file not found"),
        ("directory:cache", "neither a JSON object nor a file"),
    ],
)
def test_a_bad_config_is_one_line_and_status_2(config: str, fragment: str) -> None:
    assert_error(cachekit("keys", "--driver", "filesystem", "--config", config), 2, fragment)


def test_a_toml_file_that_does_not_parse(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("directory = \n", encoding="utf-8")
    assert_error(cachekit("keys", "--driver", "filesystem", "--config", str(config)), 2, "not valid TOML")


def test_unknown_driver_and_bad_option(fs_directory: Path) -> None:
    assert_error(cachekit("keys", "--driver", "nope", "--config", "{}"), 2, "unknown cache driver 'nope'")
    bad = json.dumps({"directory": str(fs_directory), "bogus": 1})
    assert_error(cachekit("stats", "--driver", "filesystem", "--config", bad), 2, "unknown", "bogus")
    assert_error(cachekit("keys", "--driver", "memory", "--config", '{"max_szie": 1}'), 2,
                 "unknown memory driver option 'max_szie' (did you mean 'max_size'?)")


def test_a_missing_directory_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    result = cachekit("keys", "--driver", "filesystem", "--config", json.dumps({"directory": str(missing)}))
    assert_error(result, 2, "does not exist")
    assert not missing.exists()


def test_a_directory_without_a_cache_is_an_error_and_stays_untouched(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a cache", encoding="utf-8")
    result = cachekit("keys", "--driver", "filesystem", "--config", json.dumps({"directory": str(tmp_path)}))
    assert_error(result, 2, "holds no filesystem cache")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_partition_aware_cache_is_found_below_its_directory(tmp_path: Path) -> None:
    with Cache(driver="partition-filesystem", namespace="users", config={"directory": str(tmp_path)}) as users:
        users.set("u0", 1)
    config = json.dumps({"directory": str(tmp_path)})
    assert lines_of(cachekit("keys", "--driver", "partition-filesystem", "--config", config)) == ["users/u0"]


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert_error(cachekit(), 2, "choose a command")
    assert_error(cachekit("frob"), 2, "invalid choice")
    assert_error(cachekit("keys", "--config", "{}"), 2, "--driver is required")
    assert main(["keys", "--driver", "memory", "--bogus"]) == 2
    assert capsys.readouterr().err.startswith("cachekit: error: unrecognized arguments: --bogus")


def test_version_and_help() -> None:
    from cachekit import __version__

    assert lines_of(cachekit("--version")) == [f"cachekit {__version__}"]
    assert "usage: cachekit keys" in cachekit("keys", "--help").stdout


def test_python_dash_m_cachekit_runs_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "cachekit", "keys", "--help"], capture_output=True, text=True,
                            timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "usage: cachekit keys" in result.stdout


def test_the_console_script_points_at_the_tools_wing() -> None:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]
    module, _, name = project["scripts"]["cachekit"].partition(":")
    assert callable(getattr(importlib.import_module(module), name))


def test_bench_is_wired() -> None:
    spec = importlib.util.find_spec("cachekit._tools.bench")
    if spec is None:
        pytest.skip("cachekit._tools.bench is not written yet")
    bench = importlib.import_module("cachekit._tools.bench")
    if not callable(getattr(bench, "main", None)):
        pytest.skip("cachekit._tools.bench has no main(argv) yet")
    result = cachekit("bench", "--help")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


# -- clear's confirmation on a terminal (in-process: a subprocess has no terminal) ---------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "status", "left"), [("y\n", 0, ORDERS), ("n\n", 1, sorted(ORDERS + USERS))])
def test_clear_asks_on_a_terminal(
    fs_config: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], answer: str, status: int,
    left: list[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    assert main(["clear", "--driver", "filesystem", "--config", fs_config, "--namespace", "users"]) == status
    out = capsys.readouterr().out
    assert "Remove 3 keys of namespace 'users'" in out
    assert main(["keys", "--driver", "filesystem", "--config", fs_config]) == 0
    assert capsys.readouterr().out.splitlines() == left


# -- the demo ------------------------------------------------------------------------------------------------------


@pytest.mark.s3
@pytest.mark.slow
def test_demo_quick_runs_on_a_bare_machine() -> None:
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("rich") is None:
        unavailable("the demo needs moto[server] and rich: pip install 'cachekit-orm[demo]'")
    result = cachekit("demo", "--quick", timeout=120)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    out = result.stdout
    for action in ("get", "count", "list", "page"):
        assert f"\n {action} " in out or f"│ {action} " in out, out
    assert "Warm reads: hit rate 100.0%" in out, out
    assert "Mixed workload hit rate:" in out
    assert "no stale reads." in out


def test_demo_rejects_a_bad_config_before_starting() -> None:
    assert_error(cachekit("demo", "--quick", "--config", "{oops"), 2, "not valid JSON")
    assert_error(cachekit("demo", "--quick", "--driver", "nope"), 2, "unknown cache driver")


def test_demo_against_an_unreachable_cache_backend_is_one_line_and_fails() -> None:
    dead = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    config = json.dumps({"url": dead, "connect_timeout": 0.5})
    line = assert_error(cachekit("demo", "--quick", "--driver", "redis", "--config", config), 1,
                        "cannot be reached", "127.0.0.1")
    assert "hunter2" not in line
