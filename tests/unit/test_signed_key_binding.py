"""Signed entries bound to their key (issue 19): a valid entry copied under another key is a miss.

With ``signing_key`` the MAC covers the full key (namespace, resource, action, id hash and generations). Another
writer of the backend (a second Redis client that can GET and SET, a second driver on the directory) copies
the bytes stored for ``get("alice")`` over bob's key, a never-read id, another resource's key, another
namespace's key, and the current key of alice after an update (the pre-update entry, under its old
generations): each read returns fresh data from the source, and the copy is counted as an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates

SIGNING_KEY = b"tenant-a-signing-key-0123456789"


class _Users:
    name = "users"

    def __init__(self, cache: Cache, name: str = "users") -> None:
        self.cache = cache
        self.name = name
        self.rows = {"alice": {"id": "alice", "role": "admin"}, "bob": {"id": "bob", "role": "guest"},
                     "carol": {"id": "carol", "role": "guest"}}
        self.calls = 0

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any]:
        self.calls += 1
        return dict(self.rows[id])

    @invalidates(action="update")
    def update(self, id: str, role: str) -> None:
        self.rows[id]["role"] = role


class _Backend:
    """Caches on one backend, and raw access to its stored bytes with a writer's rights only."""

    def __init__(self, make: Callable[[str], Cache], raw_get: Callable[[Cache, str], bytes],
                 raw_set: Callable[[Cache, str, bytes], None]) -> None:
        self.make, self.raw_get, self.raw_set = make, raw_get, raw_set
        self.opened: list[Cache] = []

    def cache(self, namespace: str = "signed") -> Cache:
        cache = self.make(namespace)
        self.opened.append(cache)
        return cache

    def copy(self, source: Cache, source_key: str, target: Cache, target_key: str) -> None:
        self.raw_set(target, target_key, self.raw_get(source, source_key))


@pytest.fixture(params=["memory", "filesystem", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_Backend]:
    signed = {"signing_key": SIGNING_KEY}
    if request.param == "memory":
        from cachekit.drivers.memory import MemoryDriver

        shared = MemoryDriver()
        found = _Backend(lambda ns: Cache(shared, namespace=ns, config=signed),
                         lambda cache, key: shared.get(key), lambda cache, key, blob: shared.set(key, blob, 300))
    elif request.param == "filesystem":
        from cachekit.drivers.filesystem import FilesystemDriver

        intruder = FilesystemDriver(directory=tmp_path)  # a second writer of the directory, raw bytes
        found = _Backend(
            lambda ns: Cache(driver="filesystem", namespace=ns, config={"directory": str(tmp_path), **signed}),
            lambda cache, key: intruder.get(key), lambda cache, key, blob: intruder.set(key, blob, 300),
        )
    else:
        import redis

        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        client = redis.Redis.from_url(url)  # another tenant's client: GET and SET on our keys, nothing else
        found = _Backend(
            lambda ns: Cache(driver="redis", namespace=ns, config={"url": url, "key_prefix": prefix, **signed}),
            lambda cache, key: client.get(prefix + key), lambda cache, key, blob: client.set(prefix + key, blob),
        )
    yield found
    for cache in found.opened:
        cache.close()


def test_alices_entry_over_bobs_key_is_a_miss(backend: _Backend) -> None:
    repo = _Users(backend.cache())
    assert repo.get("alice")["role"] == "admin"
    assert repo.get("bob")["role"] == "guest"
    backend.copy(repo.cache, repo.get.cache_key("alice"), repo.cache, repo.get.cache_key("bob"))
    errors = repo.cache.stats().errors
    assert repo.get("bob") == {"id": "bob", "role": "guest"}
    assert repo.calls == 3  # loaded again: the copy was refused
    assert repo.cache.stats().errors == errors + 1
    assert repo.get("bob") == {"id": "bob", "role": "guest"}
    assert repo.calls == 3  # and replaced by a good entry: a hit


def test_a_copy_to_a_never_read_id_is_a_miss(backend: _Backend) -> None:
    repo = _Users(backend.cache())
    repo.get("alice")
    backend.copy(repo.cache, repo.get.cache_key("alice"), repo.cache, repo.get.cache_key("carol"))
    assert repo.get("carol") == {"id": "carol", "role": "guest"}
    assert repo.calls == 2


def test_a_copy_to_another_resource_is_a_miss(backend: _Backend) -> None:
    cache = backend.cache()
    users, staff = _Users(cache), _Users(cache, name="staff")
    staff.rows["alice"]["role"] = "intern"
    users.get("alice")
    backend.copy(cache, users.get.cache_key("alice"), cache, staff.get.cache_key("alice"))
    assert staff.get("alice") == {"id": "alice", "role": "intern"}
    assert staff.calls == 1


def test_a_copy_to_another_namespace_is_a_miss(backend: _Backend) -> None:
    ours, theirs = _Users(backend.cache("tenant-a")), _Users(backend.cache("tenant-b"))
    theirs.rows["alice"]["role"] = "guest"
    ours.get("alice")
    backend.copy(ours.cache, ours.get.cache_key("alice"), theirs.cache, theirs.get.cache_key("alice"))
    assert theirs.get("alice") == {"id": "alice", "role": "guest"}
    assert theirs.calls == 1


def test_the_pre_update_entry_copied_under_the_current_key_is_a_miss(backend: _Backend) -> None:
    repo = _Users(backend.cache())
    old_key = repo.get.cache_key("alice")
    assert repo.get("alice")["role"] == "admin"
    repo.update("alice", "guest")
    new_key = repo.get.cache_key("alice")
    assert new_key != old_key
    backend.copy(repo.cache, old_key, repo.cache, new_key)  # a rollback by copying the old entry forward
    assert repo.get("alice") == {"id": "alice", "role": "guest"}
    assert repo.calls == 2


def test_an_entry_under_its_own_key_still_hits(backend: _Backend) -> None:
    first, second = _Users(backend.cache()), _Users(backend.cache())
    assert first.get("alice") == second.get("alice")
    assert (first.calls, second.calls) == (1, 0)  # shared: the second Cache hits the first one's entry
    backend.copy(first.cache, first.get.cache_key("alice"), first.cache, first.get.cache_key("alice"))
    calls = first.calls
    assert first.get("alice")["role"] == "admin"
    assert first.calls == calls  # the very bytes under the very key: a hit


class _AsyncUsers:
    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.calls = 0

    @cached(action="get")
    async def get(self, id: str) -> dict[str, Any]:
        self.calls += 1
        return {"id": id, "role": "admin" if id == "alice" else "guest"}


def test_an_async_read_refuses_a_copied_entry(backend: _Backend) -> None:
    repo = _AsyncUsers(backend.cache())

    async def scenario() -> dict[str, Any]:
        await repo.get("alice")
        await repo.get("bob")
        backend.copy(repo.cache, repo.get.cache_key("alice"), repo.cache, repo.get.cache_key("bob"))
        refused = await repo.get("bob")
        assert repo.calls == 3
        assert await repo.get("bob") == refused  # the fresh entry, stored under bob's key: a hit
        return refused

    assert asyncio.run(scenario()) == {"id": "bob", "role": "guest"}
    assert repo.calls == 3
