"""Fixtures for the CachePlugin tests: a database on moto's S3 server and plugin options for every driver.

Everything runs against real servers (moto's S3 over a socket, the machine's redis-server, diskcache on a
temporary directory); nothing is mocked. "Offline" means the documents were removed from the bucket behind the
store's back (:func:`wipe_documents`), so only the cache can still answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cachekit import CachePlugin
from cachekit.s3db import Database, Resource

#: Every driver the plugin is run with: name -> how to build its options (see ``plugin_options``).
DRIVER_KINDS = ["memory", "filesystem", "partition-filesystem", "redis", "s3", "tiered"]
PARTITIONS = {"by_region": ["region"]}
SEED = [
    {"id": "u1", "name": "Ada", "region": "eu", "role": "admin"},
    {"id": "u2", "name": "Bob", "region": "us", "role": "user"},
    {"id": "u3", "name": "Cy", "region": "eu", "role": "user"},
]


@pytest.fixture
def db(s3_client: Any, s3_bucket: str) -> Iterator[Database]:
    """A database under the ``app`` prefix of this test's own bucket; closed (plugins stopped) afterwards."""
    database = Database(client=s3_client, bucket=s3_bucket, prefix="app")
    yield database
    database.close()


@pytest.fixture
def users(db: Database) -> Resource:
    """``users`` partitioned by region, with u1 (eu, admin), u2 (us) and u3 (eu); created before any plugin."""
    resource = db.create_resource("users", partitions=PARTITIONS)
    resource.insert_many(SEED)
    return resource


@pytest.fixture
def plugin_options(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], dict[str, Any]]:
    """``plugin_options("redis")`` -> the ``CachePlugin(**options)`` for that driver, on this test's resources."""

    def build(kind: str) -> dict[str, Any]:
        if kind == "memory":
            return {"driver": "memory"}
        if kind == "filesystem":
            return {"driver": "filesystem", "config": {"directory": str(tmp_path / "fs")}}
        if kind == "partition-filesystem":
            return {"driver": "filesystem", "partition_aware": True, "config": {"directory": str(tmp_path / "pfs")}}
        if kind == "s3":
            return {"driver": "s3"}  # the database's client and bucket, under plugin=cache/
        redis = {"url": request.getfixturevalue("redis_url"), "key_prefix": request.getfixturevalue("redis_prefix")}
        if kind == "redis":
            return {"driver": "redis", "config": redis}
        if kind == "tiered":
            return {"drivers": [{"driver": "memory"}, {"driver": "redis", "config": redis}]}
        raise AssertionError(f"unknown driver kind {kind!r}")

    return build


@pytest.fixture
def cached_users(db: Database, users: Resource) -> Resource:
    """``users`` under a default memory ``CachePlugin``."""
    db.use_plugin(CachePlugin(driver="memory"))
    return users


# -- helpers ----------------------------------------------------------------------------------------------------


def object_keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix``, read straight from S3."""
    paginator = client.get_paginator("list_objects_v2")
    return sorted(
        item["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for item in page.get("Contents", ())
    )


def wipe_documents(db: Database) -> None:
    """Delete every document and index object of ``db`` directly in S3 (no change reaches the plugin).

    Afterwards the store is "offline" for its old data: a read that still returns it was served by the cache.
    """
    keys = [k for k in object_keys(db.client, db.bucket, db.key_prefix) if "/plugin=" not in k]
    for start in range(0, len(keys), 1000):
        batch = [{"Key": key} for key in keys[start : start + 1000]]
        db.client.delete_objects(Bucket=db.bucket, Delete={"Objects": batch, "Quiet": True})


@dataclass
class Lookups:
    """Hits and misses counted by one cache namespace between two points of a test."""

    hits: int = 0
    misses: int = 0


class LookupCounter:
    """``with count_lookups(users) as seen: ...`` then ``seen.hits`` / ``seen.misses`` for that block."""

    def __init__(self, facade: Any) -> None:
        self.facade = facade
        self.result = Lookups()

    def __enter__(self) -> Lookups:
        before = self.facade.stats()
        self._start = (before.hits, before.misses)
        return self.result

    def __exit__(self, *exc_info: object) -> None:
        after = self.facade.stats()
        self.result.hits = after.hits - self._start[0]
        self.result.misses = after.misses - self._start[1]


def count_lookups(resource_or_facade: Any) -> LookupCounter:
    """Count the lookups of ``resource.cache`` (or of a facade given directly) inside a ``with`` block."""
    facade = getattr(resource_or_facade, "cache", resource_or_facade)
    return LookupCounter(facade)


class S3Calls:
    """Counts the S3 API calls a boto3 client makes (an event hook, not a mock: the calls still happen)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.operations: list[str] = []
        client.meta.events.register("before-call.s3", self._seen)

    def _seen(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def reset(self) -> None:
        self.operations.clear()

    def close(self) -> None:
        self.client.meta.events.unregister("before-call.s3", self._seen)


@pytest.fixture
def s3_calls(s3_client: Any) -> Iterator[S3Calls]:
    """Every S3 operation made through ``s3_client`` (hence through ``db``) during the test."""
    calls = S3Calls(s3_client)
    yield calls
    calls.close()
