"""``cachekit demo`` against the user's Redis leaves nothing there, alone or as a tier (issue 20, defects 1, 8)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.cli.test_cli import cachekit
from tests.servers import unavailable

pytestmark = [pytest.mark.redis, pytest.mark.s3, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _demo_extra() -> None:
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("rich") is None:
        unavailable("the demo needs moto[server] and rich: pip install 'cachekit-orm[demo]'")


def _left(redis_url: str, prefix: str) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return sorted(client.scan_iter(match=prefix + "*", count=1000))
    finally:
        client.close()


def test_demo_on_redis_removes_its_entries_and_counters(redis_url: str, redis_prefix: str) -> None:
    config = json.dumps({"url": redis_url, "key_prefix": redis_prefix})
    result = cachekit("demo", "--quick", "--driver", "redis", "--config", config, timeout=240)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr)
    assert _left(redis_url, redis_prefix) == []  # neither entries nor ~gen counters


def test_demo_on_tiers_memory_then_redis(redis_url: str, redis_prefix: str) -> None:
    redis_tier = {"driver": "redis", "config": {"url": redis_url, "key_prefix": redis_prefix}}
    tiers = [{"driver": "memory", "ttl": 60}, redis_tier]
    result = cachekit("demo", "--quick", "--driver", "tiered", "--config", json.dumps({"drivers": tiers}), timeout=240)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr)
    assert "CachePlugin(drivers=[memory -> redis])" in result.stdout
    assert "no stale reads." in result.stdout
    assert _left(redis_url, redis_prefix) == []
