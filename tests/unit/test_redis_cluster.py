"""RedisDriver on a real 3-primary Redis Cluster started from redis-server binaries (tests/servers.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import RedisCluster, key_slot

from cachekit._types import MISSING
from cachekit.drivers.redis import RedisDriver
from cachekit.errors import ConfigurationError, DriverUnavailable
from tests.servers import LOOPBACK, free_port

pytestmark = [pytest.mark.redis, pytest.mark.cluster]


def seed_port(cluster_url: str) -> int:
    return int(cluster_url.rsplit(":", 1)[1])


@pytest.fixture
def raw(redis_cluster_url: str) -> Iterator[RedisCluster]:
    client = RedisCluster(host=LOOPBACK, port=seed_port(redis_cluster_url))
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return f"cachekit-test:{uuid.uuid4().hex[:12]}:cache/"


@pytest.fixture
def driver(redis_cluster_url: str, prefix: str) -> Iterator[RedisDriver]:
    drv = RedisDriver(url=redis_cluster_url, key_prefix=prefix)
    yield drv
    drv.clear()
    drv.close()


def keys_per_primary(raw: RedisCluster, pattern: str) -> list[int]:
    """How many keys matching ``pattern`` each primary holds, read from each node directly."""
    counts = []
    for node in raw.get_primaries():
        with redis.Redis(host=node.host, port=node.port) as direct:
            counts.append(sum(1 for _ in direct.scan_iter(match=pattern, count=1000)))
    return counts


def test_cluster_url_builds_a_cluster_driver(driver: RedisDriver, redis_cluster_url: str) -> None:
    assert driver.stats()["cluster"] is True
    assert driver.stats()["url"] == redis_cluster_url
    assert isinstance(driver.client, RedisCluster)  # built on first use
    assert len(driver.client.get_primaries()) == 3


def test_set_get_delete_and_expiry(driver: RedisDriver, raw: RedisCluster, prefix: str) -> None:
    assert driver.get("users/1") is MISSING
    driver.set("users/1", b"one")
    assert driver.get("users/1") == b"one"
    assert raw.get(prefix + "users/1") == b"one"
    assert driver.delete("users/1") is True
    assert driver.delete("users/1") is False
    driver.set("short", b"v", ttl=0.1)
    assert 0 < raw.pttl(prefix + "short") <= 100
    deadline = time.monotonic() + 3
    while driver.get("short") is not MISSING:
        assert time.monotonic() < deadline, "PX expiry did not happen in the cluster"
        time.sleep(0.01)


def test_get_with_expiry(driver: RedisDriver) -> None:
    driver.set("ttl", b"v", ttl=60)
    driver.set("forever", b"w")
    hit = driver.get_with_expiry("ttl")
    assert not isinstance(hit, type(MISSING))
    assert hit[0] == b"v"
    assert hit[1] is not None
    assert time.time() + 59 < hit[1] <= time.time() + 60
    assert driver.get_with_expiry("forever") == (b"w", None)
    assert driver.get_with_expiry("absent") is MISSING


def test_batches_span_slots_and_nodes(driver: RedisDriver, raw: RedisCluster, prefix: str) -> None:
    items = {f"item/{i}": f"v{i}".encode() for i in range(600)}
    assert len({key_slot((prefix + key).encode()) for key in items}) > 100
    driver.set_many(items, ttl=60)
    assert all(count > 0 for count in keys_per_primary(raw, prefix + "*"))  # every primary holds some
    assert 0 < raw.pttl(prefix + "item/599") <= 60_000
    wanted = ["item/3", "nope", "item/599", "item/0", "absent/1"]
    assert driver.get_many(wanted) == [b"v3", MISSING, b"v599", b"v0", MISSING]
    assert driver.get_many(list(items)) == list(items.values())
    assert driver.delete_many(["item/3", "nope", "item/599"]) == 2
    assert driver.size() == 598
    assert driver.delete_many(items) == 598
    assert driver.size() == 0


def test_clear_scans_every_primary_and_spares_other_keys(driver: RedisDriver, raw: RedisCluster, prefix: str) -> None:
    outside = prefix.removesuffix("cache/") + "app/users/1"
    neighbour = prefix.removesuffix("/") + "-l2/users/1"
    raw.set(outside, b"theirs")
    raw.set(neighbour, b"theirs")
    driver.set_many({f"users/{i}": b"u" for i in range(60)})
    driver.set_many({f"orders/{i}": b"o" for i in range(60)})
    try:
        assert all(count > 0 for count in keys_per_primary(raw, prefix + "users/*"))
        assert driver.clear("users/") == 60
        assert keys_per_primary(raw, prefix + "users/*") == [0, 0, 0]
        assert driver.size() == 60
        assert driver.clear() == 60
        assert driver.keys() == []
        assert raw.get(outside) == b"theirs"
        assert raw.get(neighbour) == b"theirs"
    finally:
        raw.delete(outside, neighbour)


def test_clear_many_and_keys_across_nodes(driver: RedisDriver) -> None:
    driver.set_many({f"ns/resource=r{i}/action=get/{j}": b"" for i in range(4) for j in range(25)})
    assert driver.clear_many(["ns/resource=r0/", "ns/resource=r2/", ""]) == 50
    left = driver.keys()
    assert len(left) == 50
    assert {key.split("/")[1] for key in left} == {"resource=r1", "resource=r3"}
    assert driver.keys("ns/resource=r3/action=get/1") == sorted(
        f"ns/resource=r3/action=get/{j}" for j in (1, *range(10, 20))
    )


def test_glob_characters_in_prefix(driver: RedisDriver) -> None:
    driver.set_many({"a*b/1": b"", "axb/1": b"", "a?b/1": b"", "a[b]/1": b"", "ab/1": b""})
    assert driver.clear("a*b/") == 1
    assert driver.clear("a?b/") == 1
    assert driver.clear("a[b]/") == 1
    assert driver.keys() == ["ab/1", "axb/1"]


def test_cluster_flag_with_plain_url_and_host_port(redis_cluster_url: str, prefix: str) -> None:
    port = seed_port(redis_cluster_url)
    with (
        RedisDriver(url=f"redis://{LOOPBACK}:{port}", cluster=True, key_prefix=prefix) as by_url,
        RedisDriver(host=LOOPBACK, port=port, cluster=True, key_prefix=prefix) as by_addr,
    ):
        assert by_url.stats()["cluster"] is True
        assert {k: v for k, v in by_addr.stats().items() if k != "breaker"} == {
            "driver": "redis",
            "key_prefix": prefix,
            "cluster": True,
            "url": f"redis+cluster://{LOOPBACK}:{port}",
        }
        by_url.set_many({f"k{i}": b"v" for i in range(30)})
        assert by_addr.get_many(["k0", "k29"]) == [b"v", b"v"]
        assert by_addr.clear() == 30


def test_given_cluster_client_is_used_and_left_open(raw: RedisCluster, prefix: str) -> None:
    drv = RedisDriver(client=raw, key_prefix=prefix)
    assert drv.client is raw
    assert drv.stats()["cluster"] is True
    drv.set_many({f"k{i}": b"v" for i in range(20)})
    assert drv.size() == 20
    assert drv.clear() == 20
    drv.close()
    assert raw.ping() is True


def test_cluster_construction_is_lazy_and_failures_are_unavailable() -> None:
    drv = RedisDriver(url=f"redis+cluster://{LOOPBACK}:{free_port()}", connect_timeout=0.2, command_timeout=0.2)
    try:
        start = time.monotonic()
        for call in (lambda: drv.get("k"), lambda: drv.set("k", b"v"), drv.clear):
            with pytest.raises(DriverUnavailable):
                call()
        assert time.monotonic() - start < 3.0
    finally:
        drv.close()


@pytest.mark.parametrize(
    "options",
    [
        {"url": "redis+cluster://127.0.0.1:7000/1"},
        {"url": "redis://127.0.0.1:7000/1", "cluster": True},
        {"host": "127.0.0.1", "port": 7000, "db": 1, "cluster": True},
    ],
)
def test_cluster_has_only_database_zero(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="database 0"):
        RedisDriver(**options)  # type: ignore[arg-type]
