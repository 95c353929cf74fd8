"""RedisDriver against real redis-server processes: the machine's Redis (own key prefix) and private servers."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from cachekit._types import MISSING
from cachekit.drivers import create_driver
from cachekit.drivers.redis import RedisDriver
from cachekit.errors import ConfigurationError, DriverError, DriverUnavailable
from tests.conftest import FakeClock
from tests.servers import LOOPBACK, RedisServer, free_port

pytestmark = pytest.mark.redis


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client on the same server, to look behind the driver's back."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    """The driver's key_prefix: inside this test's own prefix, leaving room for "other applications" beside it."""
    return redis_prefix + "cache/"


@pytest.fixture
def driver(redis_url: str, prefix: str) -> Iterator[RedisDriver]:
    drv = RedisDriver(url=redis_url, key_prefix=prefix)
    yield drv
    drv.close()


@pytest.fixture(scope="module")
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this module's own, for tests that count commands or stop the server."""
    server = RedisServer().start()
    yield server
    server.cleanup()


def wait_until_missing(drv: RedisDriver, key: str, within: float = 3.0) -> float:
    """Poll until ``key`` is gone (Redis owns expiry, so there is no clock to advance); return the wait."""
    start = time.monotonic()
    while drv.get(key) is not MISSING:
        assert time.monotonic() - start < within, f"{key!r} did not expire within {within} s"
        time.sleep(0.01)
    return time.monotonic() - start


# -- basic operations ---------------------------------------------------------------------------------------


def test_registry_name_and_flags(redis_url: str, prefix: str) -> None:
    drv = create_driver("redis", url=redis_url, key_prefix=prefix)
    try:
        assert isinstance(drv, RedisDriver)
        assert drv.name == "redis"
        assert drv.blocking is True
    finally:
        drv.close()


def test_set_get_delete(driver: RedisDriver, raw: redis.Redis, prefix: str) -> None:
    assert driver.get("users/1") is MISSING
    driver.set("users/1", b"one")
    assert driver.get("users/1") == b"one"
    assert raw.get(prefix + "users/1") == b"one"  # stored under key_prefix + key
    driver.set("users/1", b"uno")
    assert driver.get("users/1") == b"uno"
    assert driver.delete("users/1") is True
    assert driver.delete("users/1") is False
    assert driver.get("users/1") is MISSING


def test_px_expiry_is_enforced_by_redis(driver: RedisDriver, raw: redis.Redis, prefix: str) -> None:
    driver.set("short", b"v", ttl=0.15)
    assert 0 < raw.pttl(prefix + "short") <= 150
    assert driver.get("short") == b"v"
    waited = wait_until_missing(driver, "short")
    assert 0.05 < waited < 1.0
    assert raw.exists(prefix + "short") == 0


def test_ttl_none_means_no_expiry_and_replaces_an_old_ttl(driver: RedisDriver, raw: redis.Redis, prefix: str) -> None:
    driver.set("k", b"v", ttl=60)
    assert 59_000 < raw.pttl(prefix + "k") <= 60_000
    driver.set("k", b"v2")
    assert raw.pttl(prefix + "k") == -1


def test_ttl_rounding_and_timedelta(driver: RedisDriver, raw: redis.Redis, prefix: str) -> None:
    driver.set("rounded", b"v", ttl=1.1)  # 1.1 * 1000 is 1100.0000000000002 in floats: still PX 1100
    assert 1000 < raw.pttl(prefix + "rounded") <= 1100
    driver.set("delta", b"v", ttl=timedelta(minutes=2))
    assert 119_000 < raw.pttl(prefix + "delta") <= 120_000


def test_sub_millisecond_ttl_is_one_millisecond_not_forever(driver: RedisDriver, raw: redis.Redis, prefix: str) -> None:
    driver.set("tiny", b"v", ttl=0.0001)
    assert raw.pttl(prefix + "tiny") in (-2, 0, 1)  # -2: already gone; never -1 (no expiry)
    wait_until_missing(driver, "tiny", within=0.5)


def test_zero_ttl_stores_nothing_and_drops_the_old_value(driver: RedisDriver, raw: redis.Redis, prefix: str) -> None:
    driver.set("k", b"old")
    driver.set("k", b"new", ttl=0)
    assert driver.get("k") is MISSING
    assert raw.exists(prefix + "k") == 0
    driver.set_many({"a": b"1", "b": b"2"})
    driver.set_many({"a": b"x", "b": b"y"}, ttl=0)
    assert driver.get_many(["a", "b"]) == [MISSING, MISSING]


@pytest.mark.parametrize("ttl", [-1, float("nan"), float("inf"), "10", True])
def test_invalid_ttl_is_a_configuration_error(driver: RedisDriver, ttl: object) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        driver.set("k", b"v", ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ttl"):
        driver.set_many({"k": b"v"}, ttl=ttl)  # type: ignore[arg-type]


def test_get_with_expiry_returns_an_absolute_deadline_on_the_driver_clock(
    redis_url: str, prefix: str, clock: FakeClock
) -> None:
    with RedisDriver(url=redis_url, key_prefix=prefix, clock=clock) as drv:
        drv.set("ttl", b"v", ttl=60)
        drv.set("forever", b"w")
        hit = drv.get_with_expiry("ttl")
        assert not isinstance(hit, type(MISSING))
        blob, deadline = hit
        assert blob == b"v"
        assert deadline is not None
        assert clock.now + 59 < deadline <= clock.now + 60
        assert drv.get_with_expiry("forever") == (b"w", None)
        assert drv.get_with_expiry("absent") is MISSING


def test_get_with_expiry_defaults_to_wall_clock(driver: RedisDriver) -> None:
    driver.set("k", b"v", ttl=30)
    hit = driver.get_with_expiry("k")
    assert not isinstance(hit, type(MISSING))
    assert hit[1] is not None
    assert time.time() + 29 < hit[1] <= time.time() + 30


def test_binary_safe_values(driver: RedisDriver) -> None:
    every_byte = bytes(range(256)) * 4
    big = os.urandom(1 << 20)  # 1 MB
    driver.set("bytes", every_byte)
    driver.set("nul", b"\x00")
    driver.set("empty", b"")
    driver.set("big", big, ttl=30)
    assert driver.get("bytes") == every_byte
    assert driver.get("nul") == b"\x00"
    assert driver.get("empty") == b""  # an empty blob is a hit, not a miss
    assert driver.get("big") == big
    driver.set_many({"big2": big, "bytes2": every_byte})
    assert driver.get_many(["big2", "bytes2", "empty"]) == [big, every_byte, b""]


def test_unicode_keys(driver: RedisDriver) -> None:
    driver.set("ключ/ü/🙂", b"v")
    assert driver.get("ключ/ü/🙂") == b"v"
    assert driver.keys("ключ/") == ["ключ/ü/🙂"]


# -- batches ---------------------------------------------------------------------------------------------------


def test_get_many_set_many_delete_many(driver: RedisDriver, raw: redis.Redis, prefix: str) -> None:
    assert driver.get_many([]) == []
    driver.set_many({})
    assert driver.delete_many([]) == 0
    items = {f"item/{i}": f"v{i}".encode() for i in range(1200)}  # more than one pipeline/UNLINK batch
    driver.set_many(items, ttl=60)
    assert all(0 < pttl <= 60_000 for pttl in (raw.pttl(prefix + key) for key in ("item/0", "item/1199")))
    assert driver.get_many(["item/5", "nope", "item/1199"]) == [b"v5", MISSING, b"v1199"]
    assert driver.get_many(list(items)) == list(items.values())
    assert driver.delete_many(["item/5", "nope", "item/6"]) == 2
    assert driver.delete_many(key for key in items) == 1198
    assert driver.size() == 0


def test_set_many_without_ttl_persists(driver: RedisDriver, raw: redis.Redis, prefix: str) -> None:
    driver.set_many({"a": b"1", "b": b"2"})
    assert raw.pttl(prefix + "a") == -1
    assert raw.pttl(prefix + "b") == -1


# -- clear, keys, size -----------------------------------------------------------------------------------------


def test_clear_prefix_leaves_other_prefixes_and_other_applications(
    driver: RedisDriver, raw: redis.Redis, redis_prefix: str
) -> None:
    other_app = [
        redis_prefix + "app/users/1",  # another application on the same server
        redis_prefix + "cache-l2/users/1",  # a neighbour whose prefix merely starts like ours
        redis_prefix + "cacheusers/1",
    ]
    for key in other_app:
        raw.set(key, b"theirs")
    driver.set_many({"users/1": b"a", "users/2": b"b", "users/10/x": b"c", "usersx": b"d", "orders/1": b"e"})

    assert driver.clear("users/") == 3
    assert driver.keys() == ["orders/1", "usersx"]
    assert driver.clear() == 2
    assert driver.keys() == []
    assert driver.clear() == 0
    assert [raw.get(key) for key in other_app] == [b"theirs"] * 3


@pytest.mark.parametrize("special", ["*", "?", "[x]", "[", "]", "\\", "[^a]", "\\*"])
def test_glob_characters_in_prefixes_match_literally(driver: RedisDriver, special: str) -> None:
    literal = f"a{special}b/"
    neighbours = ["axb/1", "ab/1", "a]b/1", "a\\b/1", "a*b/1", "a?b/1", "a[x]b/1", "a[b/1", "ayyb/1"]
    driver.set_many(dict.fromkeys(neighbours, b"n"))
    driver.set(literal + "1", b"mine")
    expected = sorted({*neighbours, literal + "1"})
    assert driver.keys(literal) == [literal + "1"]
    assert driver.clear(literal) == 1
    assert driver.keys() == sorted(set(expected) - {literal + "1"})


def test_glob_characters_in_key_prefix(redis_url: str, redis_prefix: str) -> None:
    # Unescaped, "k[ab]*/" would match every key of the driver whose prefix is "ka/".
    with (
        RedisDriver(url=redis_url, key_prefix=redis_prefix + "k[ab]*/") as globby,
        RedisDriver(url=redis_url, key_prefix=redis_prefix + "ka/") as plain,
    ):
        globby.set("x", b"1")
        plain.set("x", b"2")
        plain.set("y", b"3")
        assert globby.keys() == ["x"]
        assert globby.size() == 1
        assert globby.clear() == 1
        assert plain.keys() == ["x", "y"]
        assert plain.get("x") == b"2"


def test_keys_and_size(driver: RedisDriver, raw: redis.Redis, redis_prefix: str) -> None:
    raw.set(redis_prefix + "app/elsewhere", b"x")
    assert driver.size() == 0
    driver.set_many({"b/2": b"", "a/1": b"", "b/1": b"", "c": b""})
    assert driver.keys() == ["a/1", "b/1", "b/2", "c"]  # sorted, without key_prefix
    assert driver.keys("b/") == ["b/1", "b/2"]
    assert driver.keys("zzz") == []
    assert driver.size() == 4


def test_clear_many_removes_keys_under_any_prefix(driver: RedisDriver) -> None:
    driver.set_many(
        {
            "ns/resource=users/action=get/1": b"",
            "ns/resource=users/action=get/2": b"",
            "ns/resource=users/action=list/abc": b"",
            "ns/resource=users/partition=by_region/region=eu/action=count": b"",
            "ns/resource=users/partition=by_region/region=us/action=count": b"",
            "ns/resource=users_archive/action=list/abc": b"",
            "ns/resource=orders/action=list/abc": b"",
        }
    )
    removed = driver.clear_many(
        [
            "ns/resource=users/action=get/1",
            "ns/resource=users/action=list/",
            "ns/resource=users/partition=by_region/region=eu/",
            "ns/resource=users/action=list/",  # duplicates count once
            "",  # empty prefixes are ignored, as in Driver.clear_many
        ]
    )
    assert removed == 3
    assert driver.keys() == [
        "ns/resource=orders/action=list/abc",
        "ns/resource=users/action=get/2",
        "ns/resource=users/partition=by_region/region=us/action=count",
        "ns/resource=users_archive/action=list/abc",
    ]
    assert driver.clear_many([]) == 0
    assert driver.clear_many([""]) == 0
    assert driver.clear_many(["ns/resource=orders/"]) == 1


def scan_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))


def test_clear_many_scans_once(private_redis: RedisServer) -> None:
    with (
        redis.Redis.from_url(private_redis.url) as raw,
        RedisDriver(url=private_redis.url, key_prefix="once:") as drv,
    ):
        drv.set_many({f"ns/resource=r{i}/action=get/{j}": b"" for i in range(5) for j in range(20)})
        before = scan_calls(raw)
        assert drv.clear_many([f"ns/resource=r{i}/" for i in (0, 2, 4)]) == 60
        assert scan_calls(raw) - before == 1  # one SCAN (COUNT 1000 covers this small database) for 3 prefixes
        assert drv.size() == 40
        drv.clear()


def test_clear_never_flushes(private_redis: RedisServer) -> None:
    with (
        redis.Redis.from_url(private_redis.url) as raw,
        RedisDriver(url=private_redis.url, key_prefix="mine:") as drv,
    ):
        raw.set("someone-else", b"x")
        drv.set("k", b"v")
        assert drv.clear() == 1
        assert raw.get("someone-else") == b"x"
        stats = raw.info("commandstats")
        assert "cmdstat_flushdb" not in stats
        assert "cmdstat_flushall" not in stats
        raw.delete("someone-else")


# -- configuration ---------------------------------------------------------------------------------------------


def test_url_and_host_port_configs_reach_the_same_data(redis_url: str, prefix: str) -> None:
    parsed = redis.connection.parse_url(redis_url)
    with (
        RedisDriver(url=redis_url, key_prefix=prefix) as by_url,
        RedisDriver(host=parsed["host"], port=parsed["port"], db=parsed.get("db", 0), key_prefix=prefix) as by_addr,
    ):
        by_url.set("shared", b"v")
        assert by_addr.get("shared") == b"v"
        assert by_addr.stats()["url"] == f"redis://{parsed['host']}:{parsed['port']}/{parsed.get('db', 0)}"


def test_db_selects_a_separate_keyspace(redis_url: str, prefix: str) -> None:
    parsed = redis.connection.parse_url(redis_url)
    other_db = 1 if parsed.get("db", 0) != 1 else 2
    with (
        RedisDriver(url=redis_url, key_prefix=prefix) as db0,
        RedisDriver(host=parsed["host"], port=parsed["port"], db=other_db, key_prefix=prefix) as db1,
    ):
        db0.set("k", b"zero")
        assert db1.get("k") is MISSING
        db1.set("k", b"one")
        assert (db0.get("k"), db1.get("k")) == (b"zero", b"one")
        db1.clear()


def test_unix_socket_url(tmp_path_factory: pytest.TempPathFactory) -> None:
    sock = tmp_path_factory.mktemp("sock") / "redis.sock"
    server = RedisServer(extra_args=("--unixsocket", str(sock), "--unixsocketperm", "700")).start()
    try:
        with RedisDriver(url=f"unix://{sock}?db=0", key_prefix="unix:") as drv:
            drv.set("k", b"v")
            assert drv.get("k") == b"v"
            assert drv.stats()["url"] == f"unix://{sock}?db=0"
    finally:
        server.cleanup()


def test_password_from_url_or_option_authenticates_and_is_never_shown() -> None:
    secret = "hunter2-s3cr3t"
    server = RedisServer(extra_args=("--requirepass", secret)).start()
    base = f"{LOOPBACK}:{server.port}"
    drivers = [
        RedisDriver(url=f"redis://:{secret}@{base}/0", key_prefix="pw:"),
        RedisDriver(url=f"redis://default:{secret}@{base}/0", key_prefix="pw:"),
        RedisDriver(url=f"redis://{base}/0?password={secret}", key_prefix="pw:"),
        RedisDriver(url=f"redis://{base}/0", password=secret, key_prefix="pw:"),
        RedisDriver(host=LOOPBACK, port=server.port, username="default", password=secret, key_prefix="pw:"),
    ]
    try:
        for drv in drivers:
            drv.set("k", b"v")
            assert drv.get("k") == b"v"
            assert secret not in repr(drv)
            assert secret not in str(drv.stats())
        with RedisDriver(url=f"redis://:wrong-{secret}@{base}/0", key_prefix="pw:") as wrong:
            with pytest.raises(DriverUnavailable) as info:  # AuthenticationError is a redis ConnectionError
                wrong.get("k")
            assert secret not in str(info.value)
    finally:
        for drv in drivers:
            drv.close()
        server.cleanup()


def test_stats_and_repr(driver: RedisDriver, redis_url: str, prefix: str) -> None:
    stats = driver.stats()
    assert stats.pop("breaker")["state"] == "closed"
    assert stats == {"driver": "redis", "key_prefix": prefix, "cluster": False, "url": redis_url}
    assert repr(driver) == f"<RedisDriver {redis_url} key_prefix={prefix!r}>"
    with RedisDriver(host="cache.internal", port=6380, db=3, password="pw", username="app", ssl=True) as drv:
        assert {k: v for k, v in drv.stats().items() if k != "breaker"} == {
            "driver": "redis",
            "key_prefix": "cachekit:",
            "cluster": False,
            "url": "rediss://app:***@cache.internal:6380/3",
        }


def test_given_client_is_used_and_left_open(redis_url: str, prefix: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        drv = RedisDriver(client=client, key_prefix=prefix)
        assert drv.client is client
        drv.set("k", b"v")
        assert client.get(prefix + "k") == b"v"
        parsed = redis.connection.parse_url(redis_url)
        assert drv.stats()["url"] == f"redis://{parsed['host']}:{parsed['port']}/{parsed.get('db', 0)}"
        drv.close()
        assert client.get(prefix + "k") == b"v"  # still usable: the driver did not close it
        with pytest.raises(DriverError, match="closed"):
            drv.get("k")


def test_closed_driver_raises_driver_error_and_close_is_idempotent(redis_url: str, prefix: str) -> None:
    drv = RedisDriver(url=redis_url, key_prefix=prefix)
    drv.set("k", b"v")
    drv.close()
    drv.close()
    with pytest.raises(DriverError, match="closed"):
        drv.get("k")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_bytes": 1 << 20}, "maxmemory"),
        ({"url": "http://127.0.0.1:6379"}, "scheme"),
        ({"url": "memcached://127.0.0.1:11211"}, "scheme"),
        ({"url": "127.0.0.1:6379"}, "scheme"),
        ({"url": 6379}, "url must be a string"),
        ({"url": "redis://127.0.0.1:6379/0?socket_timeout=soon"}, "invalid Redis URL"),
        ({"url": "redis://127.0.0.1:6379/0", "host": "10.0.0.1"}, "either url or host"),
        ({"url": "redis://127.0.0.1:6379/0", "db": 2}, "either url or host"),
        ({"url": "redis://127.0.0.1:6379/0", "ssl": True}, "either url or host"),
        ({"url": "redis+cluster://127.0.0.1:7000/2"}, "database 0"),
        ({"url": "unix:///tmp/redis.sock", "cluster": True}, "unix"),
        ({"cluster": True, "db": 1}, "database 0"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"command_timeout": -0.5}, "command_timeout"),
        ({"command_timeout": float("nan")}, "command_timeout"),
        ({"command_timeout": True}, "command_timeout"),
        ({"command_timeout": "1"}, "command_timeout"),
        ({"health_check_interval": -1}, "health_check_interval"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retry_on_timeout": "yes"}, "retry_on_timeout"),
        ({"key_prefix": ""}, "key_prefix"),
        ({"key_prefix": None}, "key_prefix"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": "6379"}, "port"),
        ({"host": ""}, "host"),
        ({"db": -1}, "db"),
        ({"cluster": "yes"}, "cluster"),
        ({"ssl": 1}, "ssl"),
        ({"password": 1234}, "password"),
        ({"clock": 5}, "clock"),
        ({"client": object()}, "client must be"),
        ({"ttl": 30, "enable_compression": True}, "options 'enable_compression', 'ttl'"),
        ({"comand_timeout": 1}, r"'comand_timeout' \(did you mean 'command_timeout'\?\)"),
        ({"url": "redis://127.0.0.1:6379/13x"}, "'/13x' is not a database number"),
        ({"url": "redis://127.0.0.1:6379/1/2"}, "'/1/2' is not a database number"),
        ({"breaker_failures": 0}, "breaker_failures must be an int >= 1"),
        ({"breaker_cooldown": float("inf")}, "breaker_cooldown must be a finite"),
    ],
)
def test_bad_configuration_is_rejected_at_construction(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedisDriver(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379", "redis://127.0.0.1:6379/", "redis://127.0.0.1/13",
                                 "redis://127.0.0.1:6379?db=2", "unix:///tmp/redis.sock?db=3"])
def test_database_paths_that_name_a_database_are_accepted(url: str) -> None:
    RedisDriver(url=url).close()


def test_a_bad_url_never_echoes_its_password() -> None:
    with pytest.raises(ConfigurationError) as raised:
        RedisDriver(url="redis://app:s3cret@127.0.0.1:6379/13x")
    assert "s3cret" not in str(raised.value)
    assert "redis://app:***@127.0.0.1:6379/13x" in str(raised.value)


def test_client_conflicts_and_decoding_clients_are_rejected(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        with pytest.raises(ConfigurationError, match="not both"):
            RedisDriver(client=client, url=redis_url)
        with pytest.raises(ConfigurationError, match="not both"):
            RedisDriver(client=client, port=6380)
    with redis.Redis.from_url(redis_url, decode_responses=True) as decoding:
        with pytest.raises(ConfigurationError, match="decode_responses"):
            RedisDriver(client=decoding)


def test_password_is_not_in_configuration_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        RedisDriver(url="http://user:hunter2@127.0.0.1:6379")
    assert "hunter2" not in str(info.value)


# -- failures ----------------------------------------------------------------------------------------------------


def test_construction_is_lazy_and_every_call_fails_as_unavailable() -> None:
    dead = free_port()
    drv = RedisDriver(host=LOOPBACK, port=dead, key_prefix="lazy:", connect_timeout=0.2, command_timeout=0.2)
    calls = [
        lambda: drv.get("k"),
        lambda: drv.get_with_expiry("k"),
        lambda: drv.get_many(["a", "b"]),
        lambda: drv.set("k", b"v", ttl=1),
        lambda: drv.set_many({"a": b"1"}),
        lambda: drv.delete("k"),
        lambda: drv.delete_many(["a"]),
        lambda: drv.clear("p/"),
        lambda: drv.clear_many(["p/", "q/"]),
        drv.keys,
        drv.size,
    ]
    start = time.monotonic()
    try:
        for call in calls:
            with pytest.raises(DriverUnavailable, match=f"127.0.0.1:{dead}") as info:
                call()
            assert isinstance(info.value.__cause__, redis.ConnectionError)
            drv.breaker.reset()  # each call reaches the (dead) server, not the open breaker
    finally:
        drv.close()
    assert time.monotonic() - start < 2.0  # fails fast: no long retry loop while the server is down


def test_other_redis_errors_are_driver_errors_not_unavailable(
    driver: RedisDriver, raw: redis.Redis, prefix: str
) -> None:
    raw.lpush(prefix + "a-list", b"x")  # WRONGTYPE for GET
    with pytest.raises(DriverError) as info:
        driver.get("a-list")
    assert not isinstance(info.value, DriverUnavailable)
    assert isinstance(info.value.__cause__, redis.ResponseError)


def test_a_silent_server_times_out_as_unavailable_without_retrying() -> None:
    # A real listening socket that never answers: connect succeeds, the reply never comes.
    with socket.create_server((LOOPBACK, 0)) as silent:
        port = silent.getsockname()[1]
        with RedisDriver(host=LOOPBACK, port=port, connect_timeout=0.2, command_timeout=0.2) as drv:
            start = time.monotonic()
            with pytest.raises(DriverUnavailable) as info:
                drv.get("k")
            elapsed = time.monotonic() - start
    assert isinstance(info.value.__cause__, redis.TimeoutError)
    assert 0.15 < elapsed < 0.39  # one command_timeout, not two (timeouts are not retried by default)


def test_server_restart_heals_pooled_connections() -> None:
    server = RedisServer().start()
    try:
        with RedisDriver(url=server.url, key_prefix="restart:", connect_timeout=0.2, command_timeout=0.2) as drv:
            drv.set("k", b"v")
            assert drv.get("k") == b"v"
            server.stop()
            with pytest.raises(DriverUnavailable):
                drv.get("k")
            server.start()  # same port; the data is gone (no persistence)
            assert drv.get("k") is MISSING  # the stale pooled connection is replaced, no error
            drv.set("k", b"again")
            assert drv.get("k") == b"again"
    finally:
        server.cleanup()


def test_a_restart_between_calls_is_invisible_to_the_caller() -> None:
    server = RedisServer().start()
    try:
        with RedisDriver(url=server.url, key_prefix="stale:", command_timeout=0.5) as drv:
            drv.set("k", b"v")  # leaves a pooled connection, which the restart breaks
            server.stop()
            server.start()
            assert drv.get("k") is MISSING  # a new connection, no error (the restarted server is empty)
            drv.set("k", b"again")
            assert drv.get("k") == b"again"
    finally:
        server.cleanup()


def test_hit_path_is_one_get_round_trip(private_redis: RedisServer) -> None:
    with (
        redis.Redis.from_url(private_redis.url) as raw,
        RedisDriver(url=private_redis.url, key_prefix="hits:") as drv,
    ):
        drv.set("k", b"v")
        before = raw.info("commandstats")
        for _ in range(10):
            assert drv.get("k") == b"v"
        after = raw.info("commandstats")
        gets_before = before.get("cmdstat_get", {}).get("calls", 0)  # none yet on a fresh private server
        assert after["cmdstat_get"]["calls"] - gets_before == 10
        others = {name: stats["calls"] for name, stats in after.items() if name not in ("cmdstat_get", "cmdstat_info")}
        assert others == {name: stats["calls"] for name, stats in before.items() if name in others}
        drv.clear()
