"""Shared fixtures: an injectable clock, the machine's Redis or a private redis-server, and moto's S3 server over a
real socket."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers import MotoServer, RedisServer, unavailable

pytest_plugins = ["tests.cluster_fixtures"]

REDIS_URL = os.environ.get("CACHEKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class FakeClock:
    """A wall clock that only moves when told: ``clock.advance(5)``."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _fresh_log_limiter() -> Iterator[None]:
    """Each test starts with cachekit's rate-limited log empty and at its default interval."""
    from cachekit._logging import DEFAULT_LOG_INTERVAL, LIMITER, set_log_interval

    LIMITER.reset()
    yield
    set_log_interval(DEFAULT_LOG_INTERVAL)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a reachable redis-server (the machine's own, started by .ci/run when absent)."""
    try:
        import redis
    except ImportError:
        unavailable("redis-py is not installed (pip install 'cachekit-orm[redis]')")
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        unavailable(f"no redis-server at {REDIS_URL}: {exc}")
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are removed afterwards (never FLUSHALL)."""
    import redis

    prefix = f"cachekit-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.unlink(*keys)
    finally:
        client.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own on a free loopback port, for tests that kill, pause or restart it."""
    try:
        server = RedisServer().start()
    except (FileNotFoundError, RuntimeError) as exc:
        unavailable(f"cannot start a private redis-server: {exc}")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's S3 server in a subprocess on a free loopback port."""
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        unavailable("boto3 / moto[server] are not installed (pip install 'cachekit-orm[test]')")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        server = MotoServer().start()
    except Exception as exc:
        unavailable(f"could not start moto's S3 server: {exc}")
    yield server
    server.stop()


@pytest.fixture
def s3_client(moto_server: MotoServer) -> Any:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    yield client
    client.close()


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A fresh, empty bucket for this test."""
    name = f"cachekit-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


def same_value(a: Any, b: Any) -> bool:
    """Equal, with the same type at every level and the same key order (``1 == 1.0 == True`` would hide a lossy
    round trip), and aware datetimes at the same offset."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dt.datetime):
        return a == b and a.utcoffset() == b.utcoffset()
    return bool(a == b)
