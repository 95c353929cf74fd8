"""Generations in Redis: counters that never go back, pub/sub that keeps other processes' copies current."""

from __future__ import annotations

from typing import Any

import pytest

from cachekit import Cache, cached, invalidates
from cachekit.generations import store_for
from cachekit.generations.redis import RedisGenerations
from tests.servers import RedisServer, wait_until

pytestmark = pytest.mark.redis


class Repo:
    name = "repo"

    def __init__(self, cache: Cache, rows: dict[str, int]) -> None:
        self.cache, self.rows = cache, rows

    @cached(action="get")
    def get(self, id: str) -> int:
        return self.rows[id]

    @invalidates("update")
    def update(self, id: str, value: int) -> None:
        self.rows[id] = value


def redis_cache(url: str, prefix: str, **options: Any) -> Cache:
    return Cache("redis", namespace="gens", config={"url": url, "key_prefix": prefix, **options})


def test_another_process_s_write_is_seen_through_the_subscription(redis_url: str, redis_prefix: str) -> None:
    rows = {"a": 1}
    writer, reader = Repo(redis_cache(redis_url, redis_prefix), rows), Repo(redis_cache(redis_url, redis_prefix), rows)
    store = store_for(reader.cache.driver)
    assert wait_until(lambda: store.trusted("gens")), "the subscription is confirmed"
    assert reader.get("a") == 1
    rows["a"] = 99  # the source changes without a write: the cache keeps serving the cached value
    assert reader.get("a") == 1
    writer.update("a", 2)
    assert wait_until(lambda: reader.get("a") == 2, timeout=1.0)
    writer.cache.close()
    reader.cache.close()


def test_a_counter_that_disappears_comes_back_higher(redis_url: str, redis_prefix: str) -> None:
    import redis

    cache = redis_cache(redis_url, redis_prefix)
    store = store_for(cache.driver)
    assert isinstance(store, RedisGenerations)
    first = store.read("gens", ["repo/agg"])[0]
    assert first > 1_600_000_000 * 10**6  # the namespace's floor, created at the server's clock in microseconds
    bumped = store.bump("gens", ["repo/agg"])[0]
    assert bumped > first
    assert store.bump("gens", ["repo/agg"])[0] == bumped + 1
    bumped += 1
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(store._key("gens", "repo/agg"))  # as an allkeys-lru eviction would
        assert client.pttl(store._key("gens", "repo/item/x")) == -2
        assert store.read("gens", ["repo/agg"])[0] > bumped  # its filter bits say it was bumped: above the top
        again = store.read("gens", ["repo/agg"])[0]
        client.delete(store._key("gens", "repo/agg"), store._key("gens", "~floor"))  # both, or an empty restart
        assert store.read("gens", ["repo/agg"])[0] > again  # the record restarts at the clock
        assert store.read("gens", ["repo/other"])[0] > again
    finally:
        client.close()
    cache.close()


def test_a_lost_subscription_is_not_trusted_and_comes_back(private_redis: RedisServer) -> None:
    rows = {"a": 1}
    options = {"command_timeout": 0.5, "connect_timeout": 0.5}
    reader = Repo(redis_cache(private_redis.url, "t:", **options), rows)
    writer = Repo(redis_cache(private_redis.url, "t:", **options), rows)
    store = store_for(reader.cache.driver)
    assert wait_until(lambda: store.trusted("gens"))
    assert reader.get("a") == 1
    private_redis.stop()
    assert wait_until(lambda: not store.trusted("gens"))
    assert reader.get("a") == 1  # the source is served while Redis is down
    private_redis.start()  # same port, empty: every counter is gone
    assert wait_until(lambda: store.trusted("gens"), timeout=10)
    writer.update("a", 3)
    assert wait_until(lambda: reader.get("a") == 3, timeout=1.0)
    reader.cache.close()
    writer.cache.close()


def test_a_tier_hit_cannot_resurrect_an_invalidated_value(redis_url: str, redis_prefix: str) -> None:
    rows = {"a": 1}
    tiers = [{"driver": "memory", "ttl": 60}, {"driver": "redis", "ttl": 60,
                                               "config": {"url": redis_url, "key_prefix": redis_prefix}}]
    repo = Repo(Cache(drivers=tiers, namespace="gens", promote_on_hit=True), rows)
    assert repo.get("a") == 1  # stored in both tiers
    memory_tier = repo.cache.driver.tiers[0].driver  # type: ignore[attr-defined]
    memory_tier.clear()  # L1 evicted: the next hit would come from L2 and be promoted
    repo.update("a", 2)
    assert repo.get("a") == 2
    memory_tier.clear()
    assert repo.get("a") == 2  # L2 holds the old value under the old key only
    repo.cache.close()


def test_the_namespace_record_starts_over_above_every_value(redis_url: str, redis_prefix: str) -> None:
    """The record of an unsigned namespace (floor, top, Bloom filter of bumped counters; issue 19) when its filter
    is full (past 100,000 counters marked) and when another client overwrote it: never a value given before."""
    import redis

    cache = redis_cache(redis_url, redis_prefix)
    store = store_for(cache.driver)
    assert isinstance(store, RedisGenerations)
    record = store._key("gens", "~floor")
    client = redis.Redis.from_url(redis_url)
    try:
        floor = store.read("gens", ["repo/never"])[0]
        (first,) = store.bump("gens", ["repo/item/a"])
        assert first > floor
        client.setrange(record, 40, b"%020d" % 100_000)  # as after 100,000 counters marked
        (second,) = store.bump("gens", ["repo/item/b"])
        assert client.strlen(record) == 60  # the filter is cleared
        assert store.read("gens", ["repo/never"])[0] > second  # the floor moved above the top
        client.delete(store._key("gens", "repo/item/a"))  # lost after the filter was cleared: reads the floor,
        assert store.read("gens", ["repo/item/a"])[0] > first  # above every value it had
        client.set(record, b"junk")
        assert store.read("gens", ["repo/never"])[0] > second  # an unreadable record starts over at the clock
        assert store.bump("gens", ["repo/item/c"])[0] > second
    finally:
        client.close()
    cache.close()
