"""``.invalidate(...)`` of a cached call reaches every cache on the backend; listings hold only entries.

Issue 23, items 7 and 8: ``repo.get.invalidate(id)`` deleted one physical key, which left the entry in other
caches' memory tiers; it now bumps the call's scope as a write does. ``keys()``/``size()`` of the S3 and Redis
drivers listed the generation records as if they were entries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache, cached
from cachekit.drivers.s3 import S3Driver


class Users:
    name = "users"

    def __init__(self, cache: Cache, db: dict[str, dict[str, str]]) -> None:
        self.cache, self.db = cache, db

    @cached(action="get")
    def get(self, id: str) -> dict[str, str]:
        return dict(self.db[id])

    @cached(action="list")
    def list(self) -> list[str]:
        return sorted(self.db)


def _tiers(second: dict[str, Any]) -> dict[str, Any]:
    return {"namespace": "inv", "drivers": [{"driver": "memory", "ttl": 60}, {"ttl": 60, **second}]}


@pytest.fixture(params=["filesystem", "redis"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "filesystem":
        return {"driver": "filesystem", "config": {"directory": str(tmp_path / "shared")}}
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return {"driver": "redis", "config": {"url": url, "key_prefix": prefix}}


def test_invalidating_a_call_reaches_another_caches_memory_tier(shared: dict[str, Any]) -> None:
    db = {"u1": {"name": "Ada"}, "u2": {"name": "Bob"}}
    a, b = Users(Cache(**_tiers(shared)), db), Users(Cache(**_tiers(shared)), db)
    try:
        assert a.get("u1") == b.get("u1") == {"name": "Ada"}
        assert b.get("u2") == {"name": "Bob"}
        db["u1"] = {"name": "Grace"}
        db["u2"] = {"name": "Bea"}
        assert a.get.invalidate("u1") is True  # it was cached here
        assert a.get("u1") == {"name": "Grace"}
        assert b.get("u1") == {"name": "Grace"}, "B's memory tier still served the invalidated entry"
        assert b.get("u2") == {"name": "Bob"}, "only that call's scope is bumped"
        assert a.list() == ["u1", "u2"]
        db["u3"] = {"name": "Cy"}
        a.list.invalidate()
        assert b.list() == ["u1", "u2", "u3"]
    finally:
        a.cache.close()
        b.cache.close()


def test_invalidating_a_plain_function_call_bumps_its_scope() -> None:
    cache, db = Cache(namespace="inv"), {"u1": 1}

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> int:
        return db["u1"]

    get("u1")
    db["u1"] = 2
    assert get.invalidate("u1") is True
    assert cache.invalidations == 1
    assert get("u1") == 2
    assert get.invalidate("u9") is False  # nothing stored here; bumped all the same


@pytest.mark.s3
def test_s3_keys_list_only_entries(s3_client: Any, s3_bucket: str) -> None:
    driver = S3Driver(bucket=s3_bucket, client=s3_client, key_prefix="c/")
    cache = Cache(driver=driver, namespace="s3")
    try:
        users = Users(cache, {"u1": {"name": "Ada"}})
        users.get("u1")
        cache.invalidate_resource("users")  # writes generation records (~gen/s3/...)
        users.get("u1")
        listed = driver.keys()
        assert [key for key in listed if key.startswith("~gen/")] == []
        assert len(listed) == driver.size() == 2
        assert cache.size() == 1
    finally:
        cache.close()


def test_redis_keys_list_only_entries(redis_url: str, redis_prefix: str) -> None:
    cache = Cache(driver="redis", namespace="r", config={"url": redis_url, "key_prefix": redis_prefix})
    try:
        users = Users(cache, {"u1": {"name": "Ada"}})
        users.get("u1")
        cache.invalidate_resource("users")  # a generation counter (~gen/{r}/users)
        users.get("u1")
        listed = cache.driver.keys()
        assert [key for key in listed if key.startswith("~gen/")] == []
        assert len(listed) == cache.driver.size() == 2
    finally:
        cache.close()
