"""RedisDriver's native async half on real redis-servers: one client per event loop, closed with its loop."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from cachekit._executor import BoundedExecutor
from cachekit._types import MISSING
from cachekit.drivers.redis import RedisDriver
from cachekit.errors import CircuitOpenError, DriverError, DriverUnavailable
from tests.servers import RedisServer

pytestmark = pytest.mark.redis

FAST = {"connect_timeout": 0.3, "command_timeout": 0.3}


@pytest.fixture
def server() -> Iterator[RedisServer]:
    running = RedisServer().start()
    yield running
    running.cleanup()


def connected_clients(server: RedisServer) -> int:
    with redis.Redis.from_url(server.url) as probe:
        return int(probe.info("clients")["connected_clients"]) - 1  # without the probe itself


def test_each_event_loop_gets_its_own_client_and_asyncio_run_closes_it(server: RedisServer) -> None:
    driver = RedisDriver(url=server.url, key_prefix="loops:")
    try:
        async def burst(tag: str) -> list[bytes | object]:
            await asyncio.gather(*(driver.aset(f"{tag}/{i}", tag.encode()) for i in range(20)))
            return await asyncio.gather(*(driver.aget(f"{tag}/{i}") for i in range(20)))

        results: dict[str, list[bytes | object]] = {}
        threads = [threading.Thread(target=lambda t=tag: results.__setitem__(t, asyncio.run(burst(t))))
                   for tag in ("a", "b", "c")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert {tag: set(found) for tag, found in results.items()} == {"a": {b"a"}, "b": {b"b"}, "c": {b"c"}}
        # Every loop has shut down: their connections are gone from the server.
        assert connected_clients(server) == 0
        assert driver.get("a/3") == b"a"  # the sync half sees the same keys
        assert connected_clients(server) == 1
    finally:
        driver.close()


def test_close_from_sync_code_closes_a_hand_run_loop_client(server: RedisServer) -> None:
    driver = RedisDriver(url=server.url, key_prefix="hand:")
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(driver.aset("k", b"v"))
        assert connected_clients(server) == 1
        driver.close()
        assert connected_clients(server) == 0
        with pytest.raises(DriverError, match="closed"):
            loop.run_until_complete(driver.aget("k"))
    finally:
        loop.close()


def test_aclose_releases_this_loops_connections_and_closes_the_driver(server: RedisServer) -> None:
    driver = RedisDriver(url=server.url, key_prefix="aclose:")

    async def main() -> None:
        await asyncio.gather(*(driver.aget(f"k{i}") for i in range(5)))
        assert connected_clients(server) == 5
        await driver.aclose()
        assert connected_clients(server) == 0
        await driver.aclose()
        with pytest.raises(DriverError, match="closed"):
            await driver.aget("k")

    asyncio.run(main())


def test_a_stopped_server_is_driver_unavailable_within_the_timeout(server: RedisServer) -> None:
    driver = RedisDriver(url=server.url, key_prefix="down:", **FAST)

    async def main() -> float:
        await driver.aset("k", b"v")
        server.stop()
        started = time.monotonic()
        with pytest.raises(DriverUnavailable, match="unavailable") as caught:
            await driver.aget("k")
        assert isinstance(caught.value.__cause__, redis.RedisError)
        with pytest.raises(DriverUnavailable):
            await driver.aset("k", b"v")
        return time.monotonic() - started

    try:
        # Two calls, each at most a connect timeout plus one quick retry (generous for a loaded machine).
        assert asyncio.run(main()) < 2 * (0.3 + 0.3) + 1.0
    finally:
        driver.close()


def test_a_hung_server_times_out_as_unavailable(server: RedisServer) -> None:
    driver = RedisDriver(url=server.url, key_prefix="hung:", **FAST)
    assert server.process is not None

    async def main() -> None:
        await driver.aset("k", b"v")
        server.process.send_signal(19)  # SIGSTOP: connected, but no answers
        try:
            started = time.monotonic()
            with pytest.raises(DriverUnavailable, match="Timeout"):
                await driver.aget("k")
            assert time.monotonic() - started < 0.3 + 1.0
        finally:
            server.process.send_signal(18)  # SIGCONT

    try:
        asyncio.run(main())
    finally:
        driver.close()


def test_a_driver_on_a_ready_sync_client_runs_its_async_twins_on_its_executor(redis_url: str) -> None:
    prefix = f"cachekit-test:{uuid.uuid4().hex[:12]}:"
    client = redis.Redis.from_url(redis_url)
    driver = RedisDriver(client=client, key_prefix=prefix)
    own = BoundedExecutor(1)
    driver.use_executor(own)

    async def main() -> tuple[object, object]:
        await driver.aset("k", b"v", ttl=30)
        return await driver.aget("k"), await driver.aget("absent")

    try:
        assert driver.supports_async is False
        assert asyncio.run(main()) == (b"v", MISSING)
        assert own._pool is not None  # ran in cachekit's pool
        assert asyncio.run(driver.aclear()) == 1
    finally:
        own.shutdown()
        driver.close()
        client.close()


def test_the_async_half_shares_the_sync_halfs_circuit_breaker(server: RedisServer) -> None:
    driver = RedisDriver(url=server.url, key_prefix="breaker:", breaker_failures=2, breaker_cooldown=30, **FAST)

    async def main() -> None:
        await driver.aset("k", b"v")
        server.stop()
        for _ in range(2):
            with pytest.raises(DriverUnavailable):
                await driver.aget("k")
        started = time.monotonic()
        with pytest.raises(CircuitOpenError):
            await driver.aget("k")  # open: fails fast, nothing sent
        assert time.monotonic() - started < 0.1 + 0.2
        with pytest.raises(CircuitOpenError):
            driver.get("k")  # the sync half sees the same breaker

    try:
        asyncio.run(main())
        assert driver.stats()["breaker"]["state"] == "open"
    finally:
        driver.close()
