"""A :class:`Cache` built against a backend that does not answer says so once, at construction (issue 20): the
address with its credentials redacted and what to check. It still builds, and its reads fail open.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cachekit import Cache, cached
from tests.servers import free_port

SECRET = "hunter2-secret"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "does not answer" in
            r.getMessage()]


def _reads_fail_open(cache: Cache, loads: int = 2) -> None:
    """Reads go to the source (a memory tier in front still serves what it holds)."""
    class Users:
        name = "users"

        def __init__(self) -> None:
            self.cache = cache
            self.loads = 0

        @cached(action="get")
        def get(self, id: str) -> dict[str, Any]:
            self.loads += 1
            return {"id": id}

    users = Users()
    assert users.get("u1") == {"id": "u1"}
    assert users.get("u1") == {"id": "u1"}
    assert users.loads == loads
    assert cache.get("k", "default") == "default"


def test_a_redis_that_does_not_answer_is_one_warning_at_construction(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens: connections are refused
    caplog.set_level(logging.WARNING, logger="cachekit")
    cache = Cache(driver="redis", namespace="app",
                  config={"url": f"redis://:{SECRET}@127.0.0.1:{port}/0", "connect_timeout": 0.5})
    (message,) = _warnings(caplog)  # before any read
    assert f"127.0.0.1:{port}" in message
    assert SECRET not in message
    assert "***" in message
    assert "Cache(namespace='app')" in message
    assert "Check that the server runs and is reachable at that address" in message
    assert "credentials" in message
    assert "fail open" in message
    _reads_fail_open(cache)
    cache.close()


def test_a_dead_tier_is_named(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    caplog.set_level(logging.WARNING, logger="cachekit")
    tiers = [{"driver": "memory"},
             {"driver": "redis", "config": {"url": f"redis://127.0.0.1:{port}/2", "connect_timeout": 0.5}}]
    with Cache(drivers=tiers, namespace="tiers") as cache:
        (message,) = _warnings(caplog)
        assert f"redis://127.0.0.1:{port}/2" in message
        _reads_fail_open(cache, loads=1)


def test_an_s3_endpoint_that_does_not_answer(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("boto3")
    port = free_port()
    caplog.set_level(logging.WARNING, logger="cachekit")
    cache = Cache(driver="s3", namespace="s3app", config={
        "bucket": "nobody", "endpoint_url": f"http://127.0.0.1:{port}", "aws_access_key_id": "AKIATEST",
        "aws_secret_access_key": SECRET, "connect_timeout": 0.5})
    (message,) = _warnings(caplog)
    assert f"http://127.0.0.1:{port}" in message
    assert "nobody" in message
    assert SECRET not in message
    cache.close()


def test_a_backend_that_answers_builds_without_a_warning(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="cachekit")
    with Cache(driver="redis", namespace="fine", config={"url": redis_url, "key_prefix": redis_prefix}):
        pass
    with Cache(namespace="memory-only"):
        pass
    assert _warnings(caplog) == []
