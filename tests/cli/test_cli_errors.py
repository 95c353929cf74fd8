"""Mistakes get one line, exit status 2, and advice that is right (issue 20, defects 3, 5 and 6).

The cases that involve log lines run as users run them (a subprocess: a log line before the error is the
defect); the others call :func:`cachekit._tools.cli.main` in this process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cachekit import Cache
from cachekit._tools.cli import main
from cachekit._tools.cli_cache import CLI_CONNECT_TIMEOUT
from tests.cli.test_cli import CLI, assert_error, cachekit
from tests.cli.test_cli_configurations import one_error, run
from tests.servers import MotoServer, free_port


def no_aws_credentials(*args: str) -> subprocess.CompletedProcess[str]:
    """``cachekit ARGS`` where boto3 finds no credentials anywhere (and never asks an instance metadata server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_CONFIG_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                          check=False, env=env)


# -- defect 3: --database mistakes ----------------------------------------------------------------------------


def test_a_database_url_that_does_not_parse_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error(capsys, 2, "keys", "--database", "my-bucket/app")
    assert "--database" in line
    assert "ValidationError" not in line
    assert "CACHEKIT_DEBUG" not in line


def test_a_dead_database_endpoint_is_one_line() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    line = assert_error(cachekit("keys", "--database", f"s3://k:hunter2@bucket/app?endpoint={dead}"), 1,
                        "cannot reach the S3 endpoint")
    assert "hunter2" not in line


def test_missing_credentials_for_a_database_is_a_usage_error() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    assert_error(no_aws_credentials("keys", "--database", f"s3://bucket/app?endpoint={dead}"), 2, "no AWS credentials")


@pytest.mark.s3
def test_a_missing_bucket_is_a_usage_error(moto_server: MotoServer) -> None:
    bucket = f"cachekit-missing-{uuid.uuid4().hex[:8]}"
    url = f"s3://testing:testing@{bucket}/app?endpoint={moto_server.endpoint_url}&region=us-east-1"
    assert_error(cachekit("keys", "--database", url), 2, f"bucket {bucket!r} does not exist")


@pytest.mark.redis
@pytest.mark.slow
def test_tls_against_a_plain_server_fails_within_the_cli_timeout(
    capsys: pytest.CaptureFixture[str], redis_url: str
) -> None:
    # The drivers wait 5 s to connect (made for applications); the CLI waits CLI_CONNECT_TIMEOUT unless told.
    tls = "rediss://" + redis_url.split("://", 1)[1]
    started = time.monotonic()
    line = one_error(capsys, 1, "keys", "--driver", "redis", "--config", json.dumps({"url": tls, "retries": 0}))
    assert time.monotonic() - started < 4.5
    assert CLI_CONNECT_TIMEOUT < 4.5
    assert "rediss:// speaks TLS" in line


@pytest.mark.redis
@pytest.mark.slow
def test_tls_against_a_plain_server_says_so_in_one_line(redis_url: str) -> None:
    tls = "rediss://" + redis_url.split("://", 1)[1]
    result = cachekit("keys", "--driver", "redis", "--config", json.dumps({"url": tls, "connect_timeout": 0.5}))
    assert_error(result, 1, "rediss:// speaks TLS", "use redis://")


# -- defect 5: advice that is right ------------------------------------------------------------------------------


def test_a_missing_directory_is_not_about_create_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    line = one_error(capsys, 2, "keys", "--driver", "filesystem", "--config",
                     json.dumps({"directory": str(tmp_path / "typo")}))
    assert "does not exist" in line
    assert "create_directory" not in line


def test_a_driver_without_its_required_option_gets_config_advice(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error(capsys, 2, "keys", "--driver", "filesystem")
    assert "--config '{\"directory\": " in line
    assert "directory='" not in line  # no Python syntax
    line = one_error(capsys, 2, "keys", "--driver", "s3")
    assert "needs 'bucket' in --config" in line
    assert "__init__" not in line
    assert "'unknown'" not in line
    line = one_error(capsys, 2, "keys", "--driver", "s3", "--config", '{"bucket": "b", "bogus": 1}')
    assert "bogus" in line


@pytest.mark.redis
def test_refused_redis_credentials_are_not_called_unavailable() -> None:
    config = json.dumps({"url": f"redis://nobody-{uuid.uuid4().hex[:6]}:hunter2@127.0.0.1:6379/0"})
    line = assert_error(cachekit("keys", "--driver", "redis", "--config", config), 1, "refused the credentials")
    assert "server is running" not in line
    assert "hunter2" not in line


@pytest.mark.redis
def test_an_unreachable_redis_is_one_line_without_fail_open_talk() -> None:
    config = json.dumps({"url": f"redis://127.0.0.1:{free_port()}/0"})
    line = assert_error(cachekit("keys", "--driver", "redis", "--config", config), 1, "unavailable")
    assert "fail open" not in line


# -- defect 6: silent contradictions -------------------------------------------------------------------------------


def test_interval_without_watch_means_watch(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = {"directory": str(tmp_path / "c")}
    with Cache(driver="filesystem", namespace="users", config=config) as users:
        users.set("u1", 1)
    status, out, _ = run(capsys, "stats", "--driver", "filesystem", "--config", json.dumps(config), "--json",
                         "--interval", "0.01", "--iterations", "2")
    frames = [json.loads(line) for line in out.splitlines()]
    assert status == 0
    assert [sorted(frame) for frame in frames] == [["per_second", "stats"]] * 2
    assert "--interval must be" in one_error(capsys, 2, "stats", "--driver", "memory", "--interval", "0")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_clear_with_nothing_to_remove_says_so_and_succeeds(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = {"directory": str(tmp_path / "c")}
    Cache(driver="filesystem", namespace="users", config=config).close()
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    status, out, err = run(capsys, "clear", "--driver", "filesystem", "--config", json.dumps(config),
                           "--namespace", "users")
    assert (status, out, err) == (0, "Nothing to remove: no keys of namespace 'users'.\n", "")
    assert sys.stdin.read() == "n\n"  # never asked
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # no terminal: still nothing to confirm
    fs = ("--driver", "filesystem", "--config", json.dumps(config))
    assert run(capsys, "clear", *fs, "--namespace", "users")[0] == 0
    assert main(["keys", *fs]) == 0
