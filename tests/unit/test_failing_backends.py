"""Failing backends, for real: private redis-server processes hung with SIGSTOP or killed by PID.

What must hold (issue 9): a read pays at most one command timeout while Redis hangs, and the source keeps being
served; a dead L2 never switches off a healthy L1; an outage is a handful of log lines, not one per call.
Everything goes through public behaviour (decorated methods, Cache, stats), not key strings.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates
from cachekit._logging import set_log_interval
from tests.servers import RedisServer

pytestmark = pytest.mark.redis

TIMEOUT = 0.25  # command_timeout of these tests
MARGIN = 0.1  # what a read may spend beyond one timeout (the bound)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    running = RedisServer().start()
    yield running
    running.cleanup()


def redis_config(server: RedisServer, prefix: str, **extra: Any) -> dict[str, Any]:
    return {"url": server.url, "key_prefix": prefix, "connect_timeout": TIMEOUT, "command_timeout": TIMEOUT, **extra}


class Users:
    """A repository whose "database" is a dict; loads are counted (thread-safe)."""

    name = "users"

    def __init__(self, cache: Cache, count: int) -> None:
        self.cache = cache
        self.rows = {i: {"id": i, "version": 0} for i in range(count)}
        self.loads = 0
        self._lock = threading.Lock()

    @cached(action="get")
    def get(self, id: int) -> dict[str, Any]:
        with self._lock:
            self.loads += 1
        return dict(self.rows[id])

    @invalidates("update")
    def update(self, id: int, data: dict[str, Any]) -> None:
        self.rows[id].update(data)


def test_a_hung_redis_costs_each_read_at_most_one_timeout(server: RedisServer) -> None:
    cache = Cache(driver="redis", namespace="hung", ttl=60,
                  config=redis_config(server, "hung:", breaker_cooldown=0.5))
    users = Users(cache, count=20)
    for i in range(20):
        users.get(i)  # warm: every read below starts with a Redis GET that hangs
    slowest: list[float] = []
    served_while_hung = [0]
    hung = threading.Event()
    stop = threading.Event()
    wrong: list[Any] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        worst = 0.0
        deadline = time.monotonic() + 15  # bound, whatever happens
        while not stop.is_set() and time.monotonic() < deadline:
            id = rng.randrange(20)
            started = time.monotonic()
            value = users.get(id)
            worst = max(worst, time.monotonic() - started)
            if value != {"id": id, "version": 0}:
                wrong.append(value)
            if hung.is_set():
                served_while_hung[0] += 1
            time.sleep(0.002)  # a busy service, not a spin loop that starves the thread whose timeout ends
        slowest.append(worst)

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)
        loads_before = users.loads
        server.pause()
        hung.set()
        time.sleep(3.0)
        hung.clear()
        server.resume()
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(20)
        server.resume()
    assert wrong == []
    assert len(slowest) == 8
    assert max(slowest) <= TIMEOUT + MARGIN, slowest
    # The source kept being served: many reads per thread during the 3 s, not one per timeout.
    assert served_while_hung[0] > 8 * 3 / TIMEOUT
    assert users.loads - loads_before > 8 * 3 / TIMEOUT
    breaker = cache.stats().details["breaker"]
    assert breaker["trips"] >= 1
    # After the cool-down the probe finds Redis back: hits resume (bounded wait).
    deadline = time.monotonic() + 5
    while cache.stats().details["breaker"]["state"] != "closed" and time.monotonic() < deadline:
        users.get(0)
        time.sleep(0.05)
    hits = cache.stats().hits
    users.get(0)
    users.get(0)
    assert cache.stats().hits >= hits + 1
    cache.close()


def hit_rate_of(users: Users, cache: Cache, rng: random.Random, operations: int) -> float:
    """Reads (95 %) and writes (5 %) over a skewed key set; every read must return the current row."""
    before = cache.stats()
    for i in range(operations):
        id = min(int(rng.paretovariate(1.0)) - 1, len(users.rows) - 1)
        if rng.random() < 0.05:
            users.update(id, {"version": i})
        else:
            assert users.get(id) == users.rows[id]
    after = cache.stats()
    hits, misses = after.hits - before.hits, after.misses - before.misses
    return hits / (hits + misses)


def test_a_dead_l2_leaves_the_l1_hit_rate_alone(server: RedisServer) -> None:
    cache = Cache(
        drivers=[{"driver": "memory", "ttl": 60, "config": {"max_size": 10_000}},
                 {"driver": "redis", "ttl": 300, "config": redis_config(server, "tiers:")}],
        namespace="tiers",
    )
    users = Users(cache, count=200)
    rng = random.Random(7)
    up = hit_rate_of(users, cache, rng, 2000)
    server.kill()
    down = hit_rate_of(users, cache, rng, 2000)
    assert up > 0.5
    assert down >= 0.8 * up, (up, down)
    l2 = cache.stats().details["tiers"][1]
    assert l2["in_service"] is False
    assert l2["breaker"]["state"] in ("open", "half-open")
    assert cache.pending_invalidations  # the writes' bumps, sent when Redis is back
    cache.close()


def test_l2_back_after_an_outage_never_serves_what_a_write_changed(server: RedisServer) -> None:
    cache = Cache(
        drivers=[{"driver": "memory", "ttl": 60},
                 {"driver": "redis", "ttl": 300, "config": redis_config(server, "back:", breaker_cooldown=0.2)}],
        namespace="back",
    )
    users = Users(cache, count=3)
    assert users.get(1) == {"id": 1, "version": 0}  # in L1 and L2
    server.pause()
    users.update(1, {"version": 1})  # L1 cleared; L2 hung: it misses the invalidation
    server.resume()
    time.sleep(0.25)  # past the cool-down: the next access replays the missed invalidation first
    cache.driver.tiers[0].driver.clear()  # L1 loses everything (evicted, or a restart of this process's L1)
    assert users.get(1) == {"id": 1, "version": 1}
    assert cache.stats().details["tiers"][1]["pending_invalidations"] == 0
    cache.close()


def outage_log_lines(cache: Cache, users: Users, server: RedisServer, caplog: pytest.LogCaptureFixture) -> list[str]:
    """A 3 s outage with a write (and a read) every 10 ms, logged at a 3 s interval (the 10 s case, scaled)."""
    set_log_interval(3.0)
    for i in range(5):
        users.get(i)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cachekit"):
        server.kill()
        deadline = time.monotonic() + 3.0
        writes = 0
        while time.monotonic() < deadline and writes < 1000:
            users.update(writes % 5, {"version": writes})
            users.get(writes % 5)
            writes += 1
            time.sleep(0.01)
    assert writes > 100
    return [record.getMessage() for record in caplog.records if record.name.startswith("cachekit")]


def test_an_outage_of_a_tier_is_a_few_log_lines(server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache(drivers=[{"driver": "memory", "ttl": 60},
                           {"driver": "redis", "ttl": 300, "config": redis_config(server, "logs:")}], namespace="logs")
    lines = outage_log_lines(cache, Users(cache, count=5), server, caplog)
    assert 1 <= len(lines) <= 10, lines
    cache.close()


def test_an_outage_of_a_single_redis_is_a_few_log_lines(server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache(driver="redis", namespace="logs1", config=redis_config(server, "logs1:"), retry_delay=0)
    lines = outage_log_lines(cache, Users(cache, count=5), server, caplog)
    assert 1 <= len(lines) <= 10, lines
    cache.close()
