"""Scope groups (issue 19): deleting a bumped scope's generation record never rolls a fresh process back.

A hostile client with only delete rights on the generation store (a Redis ACL user with ``+del``, a second S3
client that deletes objects, another writer of the ``~generations`` SQLite file) deletes the record of a scope
that was just bumped. Before, a fresh process read the missing S3 token as 0 and a missing signed filesystem
record as the namespace's floor: the values the pre-update entry was stored under, so it was served. Now a scope
without a record reads as its group's value, which the bump raised before setting the scope's own: none of the
scope's pre-update entries was stored under it. The group's record deleted too reads as a fresh value; a group
record that is not a value cachekit sealed for that group (a scope's old value copied there, junk) is refused,
counted and replaced by a fresh value, never adopted.

Each backend is the real one (the machine's Redis, moto's S3 server, a filesystem directory); the victim is a
fresh :class:`~cachekit.Cache` (a new driver and generation store, no high-water mark), the entry stored before
the update is still within its TTL (and validly signed), so only the generations stand between it and a stale
read.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache
from cachekit.generations import store_for
from cachekit.generations._signing import GenerationSeal
from tests.servers import wait_until

from .test_generation_auth_hostile import Users, acl_client

__all__ = ["acl_client"]  # the fixture, imported for the tests below

SIGNING_KEY = b"tenant-b-signing-key-0123456789"


class Backend:
    """One generation store as a hostile client sees it: its records by name, and the raw client's deletes."""

    signed = True

    def cache(self) -> Cache:
        raise NotImplementedError

    def records(self) -> dict[str, str]:
        """Every generation record: stored key -> scope name."""
        raise NotImplementedError

    def delete(self, keys: list[str]) -> None:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def put(self, key: str, value: bytes) -> None:
        raise NotImplementedError

    def refused(self, cache: Cache) -> int:
        store = store_for(cache.driver)
        return int(getattr(store, "refused_values", 0)) + int(getattr(store, "refused_records", 0))

    def close(self) -> None:
        pass

    def item(self) -> str:
        (key,) = [k for k, scope in self.records().items() if scope.startswith("users/item/")]
        return key

    def groups(self) -> list[str]:
        return [k for k, scope in self.records().items() if scope.startswith("~group/")]


class RedisBackend(Backend):
    def __init__(self, url: str, prefix: str, acl: Callable[[str], Any]) -> None:
        import redis

        self.url, self.prefix = url, prefix
        self.admin = redis.Redis.from_url(url)
        self.deleter = acl(f"resetkeys ~{prefix}~gen/* +del")  # delete rights only
        self.setter = acl(f"resetkeys ~{prefix}~gen/* +set")

    def cache(self) -> Cache:
        cache = Cache("redis", namespace="gens", config={"url": self.url, "key_prefix": self.prefix,
                                                         "signing_key": SIGNING_KEY})
        assert wait_until(lambda: store_for(cache.driver).trusted("gens"))
        return cache

    def records(self) -> dict[str, str]:
        keys = [k.decode() for k in self.admin.scan_iter(match=self.prefix + "~gen/*", count=1000)]
        return {k: k.split("}/", 1)[1] for k in keys if "}/" in k}

    def delete(self, keys: list[str]) -> None:
        assert self.deleter.delete(*keys) == len(keys)

    def get(self, key: str) -> bytes:
        return bytes(self.admin.get(key))

    def put(self, key: str, value: bytes) -> None:
        self.setter.set(key, value)

    def close(self) -> None:
        self.admin.close()


class S3Backend(Backend):
    def __init__(self, client: Any, bucket: str, *, signed: bool) -> None:
        import boto3

        self.client, self.bucket, self.signed = client, bucket, signed
        self.attacker = boto3.client(  # a second client of the bucket
            "s3", endpoint_url=client.meta.endpoint_url, region_name="us-east-1",
            aws_access_key_id="attacker", aws_secret_access_key="attacker",
        )

    def cache(self) -> Cache:
        config: dict[str, Any] = {"bucket": self.bucket, "client": self.client, "key_prefix": "g/"}
        if self.signed:
            config["signing_key"] = SIGNING_KEY
        return Cache("s3", namespace="gens", config=config)

    def records(self) -> dict[str, str]:
        found = self.client.list_objects_v2(Bucket=self.bucket, Prefix="g/~gen/gens/").get("Contents", [])
        return {o["Key"]: o["Key"][len("g/~gen/gens/") :] for o in found}

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.attacker.delete_object(Bucket=self.bucket, Key=key)

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def put(self, key: str, value: bytes) -> None:
        self.attacker.put_object(Bucket=self.bucket, Key=key, Body=value)

    def close(self) -> None:
        self.attacker.close()


class FilesystemBackend(Backend):
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def cache(self) -> Cache:
        return Cache("filesystem", namespace="gens", config={"directory": str(self.directory),
                                                             "signing_key": SIGNING_KEY})

    def _sql(self, statement: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """Another writer of the directory: plain SQL on ``~generations`` (a connection of its own)."""
        con = sqlite3.connect(self.directory / "~generations" / "cache.db", timeout=30)
        try:
            rows = con.execute(statement, args).fetchall()
            con.commit()
        finally:
            con.close()
        return rows

    def records(self) -> dict[str, str]:
        rows = self._sql("SELECT key FROM Cache WHERE key LIKE 'gens/%'")
        return {key: key[len("gens/") :] for (key,) in rows if not key.endswith(("/~epoch", "/~floor"))}

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._sql("DELETE FROM Cache WHERE key = ?", (key,))
        assert not set(keys) & set(self.records())

    def get(self, key: str) -> bytes:
        ((value,),) = self._sql("SELECT value FROM Cache WHERE key = ?", (key,))
        return bytes(value)

    def put(self, key: str, value: bytes) -> None:
        self._sql("UPDATE Cache SET value = ? WHERE key = ?", (value, key))


BACKENDS = [
    pytest.param("redis-signed", marks=pytest.mark.redis),
    pytest.param("s3-signed", marks=pytest.mark.s3),
    pytest.param("s3-unsigned", marks=pytest.mark.s3),
    "filesystem-signed",
]


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    kind: str = request.param
    made: Backend
    if kind == "redis-signed":
        made = RedisBackend(
            request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"),
            request.getfixturevalue("acl_client"),
        )
    elif kind.startswith("s3"):
        made = S3Backend(request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket"),
                         signed=kind == "s3-signed")
    else:
        made = FilesystemBackend(tmp_path / "cache")
    yield made
    made.close()


def _stale_entry(backend: Backend, *, bumped_before: bool) -> tuple[dict[str, str], list[Users]]:
    """v1 read (and cached) by one process, then v2 written by another: the v1 entry stays in the store."""
    rows = {"alice": "v1"}
    writer = Users(backend.cache(), rows)
    if bumped_before:
        writer.update("alice", "v1")  # the item has a record of its own before v1 is cached
    reader = Users(backend.cache(), rows)
    assert reader.get("alice") == "v1"
    writer.update("alice", "v2")
    assert wait_until(lambda: reader.get("alice") == "v2")
    return rows, [writer, reader]


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("bumped_before", [False, True], ids=["first-bump", "later-bump"])
@pytest.mark.parametrize("deleted", ["own", "own-and-groups"])
def test_deleting_a_bumped_scopes_record_never_serves_the_older_entry(
    backend: Backend, bumped_before: bool, deleted: str
) -> None:
    rows, repos = _stale_entry(backend, bumped_before=bumped_before)
    doomed = [backend.item()] + (backend.groups() if deleted == "own-and-groups" else [])
    backend.delete(doomed)
    fresh = Users(backend.cache(), rows)  # a new driver and store: no high-water mark
    assert fresh.get("alice") == "v2"  # before (S3; signed filesystem, first bump): "v1", the pre-update entry
    for repo in (*repos, fresh):
        repo.cache.close()


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_group_record_that_is_not_the_groups_is_refused_and_replaced(backend: Backend) -> None:
    """The item's own older record (recorded before the update, v1 was stored under it) is copied over its
    group's, and its own record is deleted: sealed for another scope (signed), so refused; unsigned, 24 bytes
    are junk (tokens are 8). The group gets a fresh value and the fresh process never reads the older one."""
    rows = {"alice": "v1"}
    writer = Users(backend.cache(), rows)
    writer.update("alice", "v1")
    reader = Users(backend.cache(), rows)
    assert reader.get("alice") == "v1"
    item = backend.item()
    older = backend.get(item)
    writer.update("alice", "v2")
    assert wait_until(lambda: reader.get("alice") == "v2")
    group = _group_of_item(backend, backend.records()[item])
    planted = older if backend.signed else b"\x01" * 24
    backend.delete([item])
    backend.put(group, planted)
    fresh = Users(backend.cache(), rows)
    refused = backend.refused(fresh.cache)
    assert fresh.get("alice") == "v2"
    assert backend.refused(fresh.cache) == refused + 1  # counted
    assert backend.get(group) != planted  # replaced by a fresh value
    if backend.signed:
        assert _open(backend, backend.records()[group], backend.get(group)) is not None  # sealed for the group
    for repo in (writer, reader, fresh):
        repo.cache.close()


def _group_of_item(backend: Backend, scope: str) -> str:
    from cachekit.generations._groups import group_of

    name = group_of(scope)
    if isinstance(backend, RedisBackend):
        return f"{backend.prefix}~gen/{{gens}}/{name}"
    if isinstance(backend, S3Backend):
        return f"g/~gen/gens/{name}"
    return f"gens/{name}"


def _open(backend: Backend, scope: str, blob: bytes) -> int | None:
    seal = GenerationSeal(SIGNING_KEY)
    if isinstance(backend, RedisBackend):
        return seal.open_text("gens", scope, blob)
    return seal.open_bytes("gens", scope, blob)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_bump_raises_the_group_to_the_scopes_new_value(backend: Backend) -> None:
    """Every bump gives the scope's group a new value and the scope that same value (ordered stores: above the
    group's before): a scope without a record reads its current value or a later one, never an earlier one."""
    rows = {"alice": "v1"}
    repo = Users(backend.cache(), rows)
    assert repo.get("alice") == "v1"
    repo.update("alice", "v2")
    item = backend.item()
    group = _group_of_item(backend, backend.records()[item])
    first = backend.get(group)
    repo.update("alice", "v3")
    assert backend.get(group) != first  # raised by the second bump too
    scope, name = backend.records()[item], backend.records()[group]
    if backend.signed:
        own, raised = _open(backend, scope, backend.get(item)), _open(backend, name, backend.get(group))
        before = _open(backend, name, first)
        assert own is not None
        assert before is not None
        assert raised == own
        if not isinstance(backend, S3Backend):  # ordered
            assert before < raised
    else:
        assert backend.get(group) == backend.get(item)
    repo.cache.close()


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_a_lost_record_reads_at_the_mark_no_regression(backend: Backend) -> None:
    """A process that knew the scope's value reads it again after its record is lost (deleted, evicted, expired,
    dropped for the filesystem cap): the group's value is that same value, so the high-water mark is not hit and
    no bump is made (before the group took the scope's value, every such process bumped the scope)."""
    rows = {"alice": "v1"}
    repo = Users(backend.cache(), rows)
    repo.update("alice", "v2")
    assert repo.get("alice") == "v2"
    key = repo.get.cache_key("alice")
    backend.delete([backend.item()])
    repo.cache._gens.reset()  # as after a lost subscription or another process's bump: read again
    assert repo.get("alice") == "v2"
    assert repo.get.cache_key("alice") == key  # the same generation: still a hit
    assert repo.cache._gens.regressions == 0
    assert [s for s in backend.records().values() if s.startswith("users/item/")] == []  # no bump re-created it
    repo.cache.close()


def test_group_scope_names_are_reserved() -> None:
    """Group scopes are ``~group/NNNN``; no resource name can make a scope starting with ``~``."""
    from cachekit.errors import ConfigurationError
    from cachekit.generations._groups import GROUPS, group_of
    from cachekit.scopes import resource_scope

    names = {group_of(f"users/item/{index}") for index in range(20_000)}
    assert len(names) == GROUPS  # every group used, and no other name
    assert all(n.startswith("~group/") and len(n) == len("~group/0000") for n in names)
    for reserved in ("~group", "~group/0417", "~GROUP"):
        with pytest.raises(ConfigurationError):
            resource_scope(reserved, fold=True)


@pytest.mark.redis
@pytest.mark.cluster
def test_signed_groups_on_a_redis_cluster(redis_cluster_url: str) -> None:
    """Groups share their namespace's hash tag with its counters: the read and bump scripts run in one slot."""
    from redis.cluster import RedisCluster

    from tests.servers import LOOPBACK

    prefix = f"cachekit-test:{uuid.uuid4().hex[:12]}:"
    config = {"url": redis_cluster_url, "key_prefix": prefix, "signing_key": SIGNING_KEY}
    raw = RedisCluster(host=LOOPBACK, port=int(redis_cluster_url.rsplit(":", 1)[1]))
    rows = {"alice": "v1"}
    repo = Users(Cache("redis", namespace="gens", config=config), rows)
    try:
        assert repo.get("alice") == "v1"
        repo.update("alice", "v2")
        assert repo.get("alice") == "v2"
        keys = [k.decode() for k in raw.scan_iter(match=prefix + "~gen/*")]
        (item,) = [k for k in keys if "/users/item/" in k]
        assert raw.delete(item) == 1
        fresh = Users(Cache("redis", namespace="gens", config=config), rows)
        assert fresh.get("alice") == "v2"
        fresh.cache.close()
    finally:
        repo.cache.close()
        for key in raw.scan_iter(match=prefix + "*"):
            raw.delete(key)
        raw.close()
