"""Authenticated generations (issue 19, item 3): a hostile client cannot roll a signed cache back.

Each attacker is a real second Redis client logged in as an ACL user with only the rights named (``PUBLISH``
on the generation channel, or ``SET`` on the counters), or a second client of the S3 bucket that deletes a
token. The victim is a signed ``Cache``; the pre-update entry is validly signed and within its TTL, so only the
generations stand between it and a stale read.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates
from cachekit.generations import store_for
from tests.servers import wait_until

SIGNING_KEY = b"tenant-a-signing-key-0123456789"


class Users:
    name = "users"

    def __init__(self, cache: Cache, rows: dict[str, str]) -> None:
        self.cache, self.rows = cache, rows

    @cached(action="get")
    def get(self, id: str) -> str:
        return self.rows[id]

    @invalidates("update")
    def update(self, id: str, role: str) -> None:
        self.rows[id] = role


def _item_counter(cache: Cache, client: Any) -> str:
    (name,) = [k.decode() for k in client.scan_iter(match=cache.driver._prefix + "~gen/*users/item/*")]
    return name


@pytest.fixture
def acl_client(redis_url: str) -> Iterator[Callable[[str], Any]]:
    """``make(rules)``: a client logged in as a fresh ACL user with only ``rules`` (deleted afterwards)."""
    import redis

    admin = redis.Redis.from_url(redis_url)
    users: list[str] = []
    clients: list[Any] = []

    def make(rules: str) -> Any:
        user = f"cachekit-hostile-{uuid.uuid4().hex[:8]}"
        password = uuid.uuid4().hex
        admin.execute_command("ACL", "SETUSER", user, "reset", "on", f">{password}", *rules.split())
        users.append(user)
        client = redis.Redis.from_url(redis_url, username=user, password=password)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
    for user in users:
        admin.execute_command("ACL", "DELUSER", user)
    admin.close()


def _unsigned_floor(client: Any, prefix: str, namespace: str = "gens") -> bytes:
    """The floor of an unsigned namespace: its record's first 20 digits, as a counter's text."""
    return str(int(client.getrange(f"{prefix}~gen/{{{namespace}}}/~floor", 0, 19))).encode()


def _cache(url: str, prefix: str) -> Cache:
    return Cache("redis", namespace="gens", config={"url": url, "key_prefix": prefix, "signing_key": SIGNING_KEY})


def _setup(redis_url: str, redis_prefix: str) -> tuple[Users, Users, dict[str, str]]:
    rows = {"alice": "guest"}
    writer = Users(_cache(redis_url, redis_prefix), rows)
    assert wait_until(lambda: store_for(writer.cache.driver).trusted("gens"))
    # The item's counter exists from its first bump (a read creates none, only its group's record). The reader
    # subscribes after it: that bump's notification never lands while its first read is in flight (a read that
    # overlaps a notification is not remembered, so the reader would have no high-water mark for the item).
    writer.update("alice", "guest")
    reader = Users(_cache(redis_url, redis_prefix), rows)
    assert wait_until(lambda: store_for(reader.cache.driver).trusted("gens"))
    assert reader.get("alice") == "guest"  # the pre-update entry, signed, stored under the item's counter
    return reader, writer, rows


@pytest.mark.redis
def test_a_publish_only_client_cannot_roll_a_fresh_process_back(
    redis_url: str, redis_prefix: str, acl_client: Callable[[str], Any]
) -> None:
    import redis

    reader, writer, rows = _setup(redis_url, redis_prefix)
    admin = redis.Redis.from_url(redis_url)
    counter = _item_counter(reader.cache, admin)
    old = admin.get(counter).decode()
    scope = counter.split("}/", 1)[1]
    writer.update("alice", "admin")
    assert wait_until(lambda: reader.get("alice") == "admin")
    fresh = Users(_cache(redis_url, redis_prefix), rows)
    store = store_for(fresh.cache.driver)
    assert wait_until(lambda: store.trusted("gens"))
    attacker = acl_client(f"resetchannels &{redis_prefix}~gen +publish")
    with pytest.raises(redis.exceptions.NoPermissionError):
        attacker.get(counter)  # only the right named
    plain = old.split(".")[0]
    for value in (plain, old):  # a forged plain value, and a replay of the old sealed one
        assert attacker.publish(f"{redis_prefix}~gen", f"gens\n{scope}\t{value}") >= 1
    time.sleep(0.3)  # delivery (not an assert on time)
    assert fresh.get("alice") == "admin"  # never the pre-update entry
    assert getattr(store, "refused_values", 0) == 1  # the forged one; the replay is not adopted (unknown scope)
    assert reader.get("alice") == "admin"
    admin.close()
    for repo in (reader, writer, fresh):
        repo.cache.close()


@pytest.mark.redis
def test_a_set_only_client_cannot_set_a_counter_back(
    redis_url: str, redis_prefix: str, acl_client: Callable[[str], Any]
) -> None:
    import redis

    reader, writer, rows = _setup(redis_url, redis_prefix)
    admin = redis.Redis.from_url(redis_url)
    counter = _item_counter(reader.cache, admin)
    old = admin.get(counter)
    writer.update("alice", "admin")
    assert wait_until(lambda: reader.get("alice") == "admin")
    attacker = acl_client(f"resetkeys ~{redis_prefix}~gen/* +set")
    with pytest.raises(redis.exceptions.NoPermissionError):
        attacker.get(counter)
    # A process that saw the higher value: a replay of the old sealed value is below its high-water mark.
    attacker.set(counter, old)
    reader.cache._gens.reset()  # as after a lost subscription: it reads the counter again
    assert reader.get("alice") == "admin"
    assert getattr(reader.cache._gens, "regressions", 0) >= 1
    # A fresh process: a forged plain value (what an unsigned counter holds) fails its MAC.
    attacker.set(counter, old.split(b".")[0])
    fresh = Users(_cache(redis_url, redis_prefix), rows)
    assert wait_until(lambda: store_for(fresh.cache.driver).trusted("gens"))
    assert fresh.get("alice") == "admin"
    assert getattr(store_for(fresh.cache.driver), "refused_values", 0) >= 1
    # ... and the counter is pushed to a fresh value every process converges on.
    assert admin.get(counter) not in (old, old.split(b".")[0])
    admin.close()
    for repo in (reader, writer, fresh):
        repo.cache.close()


@pytest.mark.redis
def test_an_unsigned_process_keeps_its_high_water_mark(
    redis_url: str, redis_prefix: str, acl_client: Callable[[str], Any]
) -> None:
    """Without a signing key nothing is authenticated, but a process that saw a higher value never goes back."""
    import redis

    rows = {"alice": "guest"}
    options = {"url": redis_url, "key_prefix": redis_prefix}
    reader = Users(Cache("redis", namespace="gens", config=options), rows)
    writer = Users(Cache("redis", namespace="gens", config=options), rows)
    assert wait_until(lambda: store_for(reader.cache.driver).trusted("gens"))
    assert reader.get("alice") == "guest"
    admin = redis.Redis.from_url(redis_url)
    old = _unsigned_floor(admin, redis_prefix)  # what a scope never bumped reads as (no counter for it)
    writer.update("alice", "admin")
    counter = _item_counter(reader.cache, admin)
    assert wait_until(lambda: reader.get("alice") == "admin")
    acl_client(f"resetkeys ~{redis_prefix}~gen/* +set").set(counter, old)
    reader.cache._gens.reset()
    assert reader.get("alice") == "admin"
    assert int(admin.get(counter)) > int(old)  # pushed above the mark: the others converge
    admin.close()
    reader.cache.close()
    writer.cache.close()


@pytest.mark.s3
def test_a_client_that_deletes_an_s3_token_cannot_roll_back(s3_client: Any, s3_bucket: str, moto_server: Any) -> None:
    import boto3

    def s3_cache() -> Cache:
        config = {"bucket": s3_bucket, "client": s3_client, "key_prefix": "auth/", "signing_key": SIGNING_KEY}
        return Cache("s3", namespace="gens", config=config)

    rows = {"alice": "guest"}
    reader, writer = Users(s3_cache(), rows), Users(s3_cache(), rows)
    assert reader.get("alice") == "guest"  # stored while the item scope has no token
    writer.update("alice", "admin")  # writes the item's token
    assert reader.get("alice") == "admin"
    (token_key,) = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="auth/~gen/gens/users/item/")
                    ["Contents"]]
    attacker = boto3.client(  # a second client; it only deletes
        "s3", endpoint_url=s3_client.meta.endpoint_url, region_name="us-east-1",
        aws_access_key_id="attacker", aws_secret_access_key="attacker",
    )
    attacker.delete_object(Bucket=s3_bucket, Key=token_key)
    reader.cache._gens.reset()  # as after the poll saw another write: it reads the tokens again
    assert reader.get("alice") == "admin"  # the token it knew stands; not the pre-update entry
    # A forged token (an unsigned one, as an unsigned namespace writes) fails its MAC: a private generation.
    attacker.put_object(Bucket=s3_bucket, Key=token_key, Body=(12345).to_bytes(8, "big"))
    fresh = Users(s3_cache(), rows)
    assert fresh.get("alice") == "admin"
    assert getattr(store_for(fresh.cache.driver), "refused_values", 0) >= 1
    for repo in (reader, writer, fresh):
        repo.cache.close()


_DIRECTORY_WRITER = """
import sqlite3, sys
db, key, value = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]) if sys.argv[4] == "blob" else int(sys.argv[3])
con = sqlite3.connect(db)
con.execute("UPDATE Cache SET value = ? WHERE key = ?", (value, key))
con.commit()
print(con.total_changes)
"""


def _write_record(directory: Any, key: str, value: bytes | int) -> None:
    """Another process, a writer of ``~generations`` only, sets one record."""
    import subprocess
    import sys

    kind, text = ("blob", value.hex()) if isinstance(value, bytes) else ("int", str(value))
    done = subprocess.run(
        [sys.executable, "-c", _DIRECTORY_WRITER, str(directory / "~generations" / "cache.db"), key, text, kind],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert done.stdout.strip() != "0", done.stderr


def _record(directory: Any, key: str) -> bytes | int:
    import sqlite3

    con = sqlite3.connect(directory / "~generations" / "cache.db")
    try:
        ((value,),) = con.execute("SELECT value FROM Cache WHERE key = ?", (key,)).fetchall()
    finally:
        con.close()
    return value  # type: ignore[no-any-return]


def test_a_writer_of_the_generations_directory_cannot_roll_back(tmp_path: Any) -> None:
    directory = tmp_path / "cache"

    def fs_cache() -> Cache:
        return Cache("filesystem", namespace="gens", config={"directory": str(directory), "signing_key": SIGNING_KEY})

    rows = {"alice": "guest"}
    reader, writer = Users(fs_cache(), rows), Users(fs_cache(), rows)
    writer.update("alice", "v1")
    assert reader.get("alice") == "v1"  # stored under the first bump's value
    import sqlite3

    con = sqlite3.connect(directory / "~generations" / "cache.db")
    (key,) = [k for (k,) in con.execute("SELECT key FROM Cache WHERE key LIKE 'gens/users/item/%'")]
    con.close()
    old = _record(directory, key)
    writer.update("alice", "v2")
    assert reader.get("alice") == "v2"
    _write_record(directory, key, old)  # the record as it was after the first bump: a replay
    reader.cache._gens.reset()  # as after the poll saw the epoch move
    assert reader.get("alice") == "v2"  # below its high-water mark: not adopted
    # A fresh process, and a forged record (the old value as a plain integer, what an unsigned store holds).
    forged = old if isinstance(old, int) else int.from_bytes(old[:8], "big")
    _write_record(directory, key, forged)
    fresh = Users(fs_cache(), rows)
    assert fresh.get("alice") == "v2"
    for repo in (reader, writer, fresh):
        repo.cache.close()


@pytest.mark.redis
def test_an_older_entry_replayed_under_the_current_key_is_refused(
    redis_url: str, redis_prefix: str, acl_client: Callable[[str], Any]
) -> None:
    """Item 5: the MAC covers the key, generations included: the pre-update bytes copied over the current key are
    a miss, and the generation they were stored under cannot be brought back (above), so no replay is served."""
    import redis

    reader, writer, rows = _setup(redis_url, redis_prefix)
    attacker = acl_client(f"resetkeys ~{redis_prefix}* +get +set")
    old_key = reader.get.cache_key("alice")
    old_entry = attacker.get(redis_prefix + old_key)
    admin = redis.Redis.from_url(redis_url)
    counter = _item_counter(reader.cache, admin)
    admin.close()
    old_counter = attacker.get(counter)
    writer.update("alice", "admin")
    assert wait_until(lambda: reader.get("alice") == "admin")
    new_key = reader.get.cache_key("alice")
    assert new_key != old_key
    errors = reader.cache.errors
    attacker.set(redis_prefix + new_key, old_entry)  # the older bytes under the current key
    assert reader.get("alice") == "admin"
    assert reader.cache.errors == errors + 1  # refused by the MAC (it covers the key), counted
    attacker.set(counter, old_counter)  # and the old generation back, so the old key is current again
    reader.cache._gens.reset()
    assert reader.get("alice") == "admin"  # below its high-water mark: pushed above it, never adopted
    del rows
    for repo in (reader, writer):
        repo.cache.close()


@pytest.mark.redis
def test_a_write_after_a_counter_was_set_back_goes_above_the_mark(
    redis_url: str, redis_prefix: str, acl_client: Callable[[str], Any]
) -> None:
    """The counter is set back under a process that then writes: its bump (an INCR of the old value) would
    land on a value entries were stored under before (v1 under G+1); it is raised above the mark instead."""
    import redis

    rows = {"alice": "v0"}
    options = {"url": redis_url, "key_prefix": redis_prefix}
    repo = Users(Cache("redis", namespace="gens", config=options), rows)
    assert wait_until(lambda: store_for(repo.cache.driver).trusted("gens"))
    assert repo.get("alice") == "v0"
    admin = redis.Redis.from_url(redis_url)
    repo.update("alice", "v1")
    counter = _item_counter(repo.cache, admin)
    first = int(admin.get(counter))
    assert repo.get("alice") == "v1"  # stored under first
    repo.update("alice", "v2")
    assert repo.get("alice") == "v2"
    acl_client(f"resetkeys ~{redis_prefix}~gen/* +set").set(counter, first - 1)
    repo.update("alice", "v3")  # INCR: first again, where v1 lives
    assert repo.get("alice") == "v3"
    fresh = Users(Cache("redis", namespace="gens", config=options), rows)
    assert fresh.get("alice") == "v3"
    admin.close()
    repo.cache.close()
    fresh.cache.close()


@pytest.mark.redis
def test_a_signed_bump_never_moves_a_counter_back(redis_url: str, redis_prefix: str) -> None:
    """A process whose clock is behind (here: a counter another process set far ahead) still bumps above it."""
    import redis

    from cachekit.generations._signing import GenerationSeal

    reader, writer, _rows = _setup(redis_url, redis_prefix)
    admin = redis.Redis.from_url(redis_url)
    counter = _item_counter(reader.cache, admin)
    scope = counter.split("}/", 1)[1]
    ahead = time.time_ns() // 1000 + 10**12
    admin.set(counter, GenerationSeal(SIGNING_KEY).seal_text("gens", scope, ahead))
    writer.update("alice", "admin")
    value = GenerationSeal(SIGNING_KEY).open_text("gens", scope, admin.get(counter))
    assert value is not None
    assert value > ahead
    assert reader.get("alice") == "admin"
    admin.close()
    for repo in (reader, writer):
        repo.cache.close()
