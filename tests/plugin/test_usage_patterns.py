"""A Python twin of every example in the original's guide (reference/usage-patterns.md) that applies to Python.

Each test names the guide's section. The guide's camelCase options are snake_case here and TTLs are seconds.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from cachekit import MISSING, CachePlugin
from cachekit.codecs import CHECKSUM_SIZE, HEADER_SIZE
from cachekit.errors import ConfigurationError
from cachekit.s3db import Database, Resource
from tests.conftest import FakeClock
from tests.plugin.conftest import PARTITIONS, S3Calls, count_lookups, object_keys, wipe_documents
from tests.servers import MotoServer

pytestmark = pytest.mark.s3

MiB = 1 << 20


def _big_docs(count: int, size: int, prefix: str = "b") -> list[dict[str, Any]]:
    """Documents with a ``blob`` of ``size`` compressible characters."""
    return [{"id": f"{prefix}{i}", "region": "eu", "blob": "lorem ipsum " * (size // 12)} for i in range(count)]


# -- the usage journey --------------------------------------------------------------------------------------------


def test_level1_basic_memory_caching_second_count_is_a_hit(db: Database, users: Resource, s3_calls: S3Calls) -> None:
    db.use_plugin(CachePlugin(driver="memory"))
    s3_calls.reset()
    with count_lookups(users) as first:
        assert users.count() == 3
    assert (first.hits, first.misses) == (0, 1)
    assert s3_calls.operations == ["ListObjectsV2"]

    s3_calls.reset()
    with count_lookups(users) as second:
        assert users.count() == 3
    assert (second.hits, second.misses) == (1, 0)
    assert s3_calls.operations == []  # the repeat call never reached S3


def test_level2_fixed_memory_limit_evicts_least_recently_used(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory", config={"max_memory_bytes": 4096, "eviction_policy": "lru"}))
    users.insert_many(_big_docs(10, 600))
    for i in range(10):
        users.get(f"b{i}")

    memory = users.cache.get_memory_stats()
    assert memory["memory_usage"]["max"] == 4096
    assert 0 < memory["memory_usage"]["current"] <= 4096
    assert memory["evicted_due_to_memory"] > 0
    with count_lookups(users) as recent:
        users.get("b9")
    assert recent.hits == 1  # the last read is kept...
    with count_lookups(users) as oldest:
        users.get("b0")
    assert oldest.misses == 1  # ...the least recently used went first


def test_level2_percentage_memory_limit_follows_the_machine(db: Database, users: Resource) -> None:
    """Example 1.2 too: the limit is a fraction of the memory available to this process (cgroup or host)."""
    db.use_plugin(
        CachePlugin(driver="memory", ttl=1800, config={"max_memory_percent": 0.1, "enable_compression": True})
    )
    users.list()

    memory = users.cache.get_memory_stats()
    total = memory["system_memory"]["total"]
    assert 0 < total <= psutil.virtual_memory().total  # never more than the host; less inside a smaller cgroup
    assert memory["max_memory_percent"] == 0.1
    assert memory["memory_usage"]["max"] == int(total * 0.1)
    assert 0 < memory["memory_usage"]["current"] < memory["memory_usage"]["max"]
    assert 0 <= memory["system_memory"]["cache_percent"] < 10  # a few hundred bytes of GBs rounds to 0.0


@pytest.mark.parametrize("threshold", [512, 1024], ids=["example4-512", "level3-1024"])
def test_level3_compression_above_the_threshold_only(db: Database, users: Resource, threshold: int) -> None:
    compressed = CachePlugin(driver="memory", config={"enable_compression": True, "compression_threshold": threshold})
    plain = CachePlugin(driver="memory", namespace="plain")
    db.use_plugin(compressed)
    db.use_plugin(plain)
    users.insert_many(_big_docs(1, 800, "medium") + _big_docs(1, 4000, "large"))

    def blob_sizes(doc_id: str) -> tuple[int, int]:
        assert users.get(doc_id)["id"] == doc_id  # stores the document in both instances
        key_of = users.get_cache_key_resolver
        sizes = []
        for plugin in (compressed, plain):
            blob = plugin.driver.get(key_of(plugin.slug)("get", {"id": doc_id}))
            assert blob is not MISSING
            sizes.append(len(blob))
        return sizes[0], sizes[1]

    small_zipped, small_plain = blob_sizes("u1")  # a few dozen bytes: below any threshold
    assert small_zipped == small_plain
    medium_zipped, medium_plain = blob_sizes("medium0")  # ~800 bytes
    if threshold < medium_plain - HEADER_SIZE - CHECKSUM_SIZE:
        assert medium_zipped < medium_plain / 3
    else:
        assert medium_zipped == medium_plain
    large_zipped, large_plain = blob_sizes("large0")  # ~4 KB of repetitive text
    assert large_zipped < large_plain / 5
    assert users.get("large0")["blob"].startswith("lorem ipsum")  # and it reads back intact (a hit)


def _base64_json_pair() -> dict[str, Any]:
    def serializer(value: Any) -> str:
        return base64.b64encode(json.dumps(value).encode()).decode()

    def deserializer(raw: bytes) -> Any:
        return json.loads(base64.b64decode(raw).decode("utf8"))

    return {"serializer": serializer, "deserializer": deserializer}


def test_level3_5_case_insensitive_manual_keys_share_one_entry(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory", config={"case_sensitive": False, **_base64_json_pair()}))
    users.cache.set("User:1", {"data": "value"})
    assert users.cache.get("user:1") == {"data": "value"}  # "User:1" and "user:1" are one entry
    assert users.cache.get("USER:1") == {"data": "value"}


def test_level3_5_case_insensitive_reads_with_a_custom_serializer(db: Database, users: Resource) -> None:
    plugin = CachePlugin(driver="memory", config={"case_sensitive": False, **_base64_json_pair()})
    db.use_plugin(plugin)
    archive = db.create_resource("Users_Archive")

    assert users.get("u1") == users.get("u1")  # the second read is a hit, decoded by our deserializer
    blob = plugin.driver.get(users.cache.key_for("get", {"id": "u1"}))
    payload = blob[HEADER_SIZE:-CHECKSUM_SIZE]
    assert json.loads(base64.b64decode(payload)) == users.get.uncached("u1")  # stored as base64 JSON
    assert users.cache.stats().hits == 1
    stored = plugin.driver.keys()
    assert stored
    assert all(key == key.lower() for key in stored)  # keys are folded
    archive.insert({"id": "A1"})
    assert archive.count() == archive.count() == 1
    assert archive.cache.key_for("count").startswith("cache/resource=users_archive/action=count/")
    users.count()
    users.update("u1", {"name": "Ada L."})  # invalidation prefixes are folded the same way: both entries go
    assert users.cache.keys() == []
    assert users.get("u1")["name"] == "Ada L."


def test_level4_statistics_and_hit_rate(db: Database, users: Resource) -> None:
    plugin = CachePlugin(driver="memory", config={"enable_stats": True})
    db.use_plugin(plugin)
    users.count()
    users.count()
    users.get("u1")

    stats = users.cache.stats()
    assert stats.enabled
    assert (stats.hits, stats.misses, stats.evictions) == (1, 2, 0)
    assert stats.hit_rate == pytest.approx(1 / 3)
    assert stats.memory_usage_bytes
    assert stats.memory_usage_bytes > 0
    assert plugin.driver.stats()["enabled"] is True  # the original's memory driver left `enabled` out


def test_level4_statistics_disabled_reports_enabled_false(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory", config={"enable_stats": False}))
    users.count()
    users.count()
    stats = users.cache.stats()
    assert stats.enabled is False
    assert (stats.hits, stats.misses) == (0, 0)


def test_level5_filesystem_cache_survives_a_restart(
    db: Database, users: Resource, s3_client: Any, s3_bucket: str, tmp_path: Path
) -> None:
    """Also Example 2: a persistent local cache; a new process on the same directory finds the entries."""

    def persistent() -> CachePlugin:
        config = {"directory": str(tmp_path / "cache"), "enable_compression": True, "enable_cleanup": True}
        return CachePlugin(driver="filesystem", ttl=1800, config=config)

    db.use_plugin(persistent())
    assert users.count() == 3
    assert [doc["id"] for doc in users.list()] == ["u1", "u2", "u3"]
    db.close()  # "restart": the plugin stops and closes its driver

    wipe_documents(db)
    with Database(client=s3_client, bucket=s3_bucket, prefix="app") as restarted:
        again = restarted.create_resource("users", partitions=PARTITIONS)
        restarted.use_plugin(persistent())
        with count_lookups(again) as seen:
            assert again.count() == 3
            assert [doc["id"] for doc in again.list()] == ["u1", "u2", "u3"]
        assert (seen.hits, seen.misses) == (2, 0)
        assert again.count.uncached() == 0  # the documents are really gone: the cache answered


def test_level5_missing_directory_with_create_directory_false_fails_at_install(
    db: Database, users: Resource, tmp_path: Path
) -> None:
    plugin = CachePlugin(driver="filesystem", config={"directory": str(tmp_path / "absent"), "create_directory": False})
    with pytest.raises(ConfigurationError, match="absent"):
        db.use_plugin(plugin)
    assert db.plugins == []
    assert not hasattr(users, "cache")
    assert not (tmp_path / "absent").exists()


def test_level6_shared_s3_cache_across_two_servers(
    db: Database, users: Resource, s3_client: Any, s3_bucket: str, moto_server: MotoServer
) -> None:
    """Also Example 3: two Database objects are two servers; server B hits what server A stored."""

    def shared() -> CachePlugin:
        return CachePlugin(driver="s3", ttl=3600, config={"key_prefix": "app-cache/"})

    db.use_plugin(shared())
    url = f"s3://testing:testing@{s3_bucket}/app?endpoint={moto_server.endpoint_url}&region=us-east-1"
    with Database.connect(url) as server_b:  # its own boto3 client, as another process would have
        users_b = server_b.create_resource("users", partitions=PARTITIONS)
        server_b.use_plugin(shared())

        listed = users.list()  # server A: miss, stored in the bucket
        assert object_keys(s3_client, s3_bucket, "app-cache/")
        with count_lookups(users_b) as seen:
            assert users_b.list() == listed
        assert (seen.hits, seen.misses) == (1, 0)

        users.update("u1", {"name": "Ada L."})  # server A's write clears the shared entries...
        with count_lookups(users_b) as after:
            assert users_b.list()[0]["name"] == "Ada L."  # ...so server B reads the new value
        assert after.misses == 1
    assert not [k for k in object_keys(s3_client, s3_bucket, "app/") if "cache" in k]  # the data prefix stays clean


def test_level7_production_filesystem_with_monitoring_and_selective_caching(
    db: Database, users: Resource, tmp_path: Path
) -> None:
    audit = db.create_resource("plg_audit")  # created by a plugin: never cached unless included
    plugin = CachePlugin(
        driver="filesystem",
        ttl=1800,
        config={"directory": str(tmp_path / "mnt-cache"), "enable_compression": True, "enable_cleanup": True},
    )
    db.use_plugin(plugin)
    for _ in range(10):
        users.count()
        users.get("u1")

    stats = users.cache.stats()
    assert stats.enabled
    assert stats.hit_rate == pytest.approx(18 / 20)
    assert stats.hit_rate >= 0.7  # the guide's alert threshold
    assert plugin.get_cache_stats()["stats"]["hit_rate"] == pytest.approx(stats.hit_rate)
    assert not hasattr(audit, "cache")
    audit.insert({"id": "a1"})
    assert audit.get("a1") == {"id": "a1"}


# -- configuration examples ---------------------------------------------------------------------------------------


def test_multi_tier_memory_redis_s3_promotes_on_hit_and_writes_through(
    db: Database, users: Resource, redis_url: str, redis_prefix: str
) -> None:
    plugin = CachePlugin(
        drivers=[
            {"driver": "memory", "ttl": 300, "config": {"max_memory_percent": 0.1, "eviction_policy": "lru"}},
            {"driver": "redis", "ttl": 3600, "config": {"url": redis_url, "key_prefix": redis_prefix + "app-cache/"}},
            {"driver": "s3", "ttl": 86400, "config": {"key_prefix": "cache/"}},
        ],
        ttl=86400,
        config={"enable_compression": True},  # compression is a namespace option: it applies to every tier
        promote_on_hit=True,
        strategy="write-through",
    )
    db.use_plugin(plugin)
    tiers = [tier.driver for tier in plugin.driver.tiers]
    key = users.count.cache_key()

    assert users.count() == 3  # miss: stored in every tier (write-through), each for its own TTL
    now = time.time()
    for driver, bound in zip(tiers, (300, 3600, 86400), strict=True):
        found = driver.get_with_expiry(key)
        assert found is not MISSING, driver
        assert found[1] is not None
        assert bound - 5 < found[1] - now <= bound + 1

    tiers[0].delete(key)
    tiers[1].delete(key)
    with count_lookups(users) as seen:
        assert users.count() == 3  # L1 and L2 miss, L3 (S3) hits...
    assert (seen.hits, seen.misses) == (1, 0)
    assert tiers[0].get(key) is not MISSING  # ...and the entry is promoted to the faster tiers
    assert tiers[1].get(key) is not MISSING
    tier_stats = plugin.driver.stats()["tiers"]
    assert tier_stats[2]["hits"] == 1
    assert tier_stats[0]["promotions"] + tier_stats[1]["promotions"] >= 2

    users.insert({"id": "u4", "region": "us"})  # a write invalidates every tier: the read's key moves on
    assert all(driver.get(users.count.cache_key()) is MISSING for driver in tiers)
    assert users.count() == 4


def test_multi_tier_lazy_promotion_writes_the_first_tier_only(
    db: Database, users: Resource, redis_url: str, redis_prefix: str
) -> None:
    plugin = CachePlugin(
        drivers=[{"driver": "memory"}, {"driver": "redis", "config": {"url": redis_url, "key_prefix": redis_prefix}}],
        strategy="lazy-promotion",
    )
    db.use_plugin(plugin)
    users.count()
    memory, redis = (tier.driver for tier in plugin.driver.tiers)
    key = users.count.cache_key()
    assert memory.get(key) is not MISSING
    assert redis.get(key) is MISSING


def test_example1_memory_cache_with_max_size_and_hit_rate(db: Database, users: Resource) -> None:
    plugin = CachePlugin(
        driver="memory", ttl=600, max_size=500, config={"eviction_policy": "lru", "enable_stats": True}
    )
    db.use_plugin(plugin)
    for _ in range(3):
        users.list()
    stats = users.cache.stats()
    assert (stats.hits, stats.misses) == (2, 1)
    assert stats.hit_rate == pytest.approx(2 / 3)
    assert plugin.ttl == 600
    assert plugin.driver.stats()["max_size"] == 500
    assert plugin.driver.stats()["eviction_policy"] == "lru"


def test_example1_1_memory_cache_with_absolute_limit_reports_memory(db: Database, users: Resource) -> None:
    config = {"max_memory_bytes": 512 * MiB, "enable_compression": True, "compression_threshold": 1024}
    db.use_plugin(CachePlugin(driver="memory", ttl=600, config=config))
    users.list()
    memory = users.cache.get_memory_stats()  # a driver method, reached through the facade
    assert memory["memory_usage"]["max"] == 512 * MiB
    assert 0 < memory["memory_usage"]["current"] < 4096
    assert memory["memory_usage_percent"] == pytest.approx(
        100 * memory["memory_usage"]["current"] / (512 * MiB), abs=0.01
    )
    assert memory["evicted_due_to_memory"] == 0


def test_example5_manual_cache_control(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory"))
    archive = db.create_resource("users_archive")
    archive.insert({"id": "old"})
    archive.count()  # an entry of another resource

    users.cache.set("my-key", {"data": "value"})
    assert users.cache.get("my-key") == {"data": "value"}
    assert archive.cache.get("my-key") is None  # manual keys live under their resource
    assert users.cache.delete("my-key") is True
    assert users.cache.get("my-key") is None

    users.cache.set("my-key", {"data": "value"})
    users.count()
    assert users.cache.clear() == 1  # this resource's scope, manual keys included...
    assert users.cache.keys() == []
    with count_lookups(archive) as seen:
        archive.count()
    assert seen.hits == 1  # ...and nothing of another resource (the original wiped the whole driver)


def test_api_reference_set_honours_its_ttl(db: Database, users: Resource, clock: FakeClock) -> None:
    db.use_plugin(CachePlugin(driver="memory", ttl=300, clock=clock))
    users.cache.set("short", "value", 5)  # the original ignored this ttl
    users.cache.set("default", "value")
    clock.advance(6)
    assert users.cache.get("short") is None
    assert users.cache.get("default") == "value"
    clock.advance(300)
    assert users.cache.get("default") is None

    stats = users.cache.stats()
    assert stats.enabled
    assert (stats.hits, stats.misses, stats.evictions) == (1, 2, 0)
    assert stats.hit_rate == pytest.approx(1 / 3)
    assert stats.memory_usage_bytes == 0


def test_inspecting_cache_statistics_with_the_partition_aware_filesystem(
    db: Database, users: Resource, tmp_path: Path
) -> None:
    plugin = CachePlugin(driver="filesystem", partition_aware=True, config={"directory": str(tmp_path / "cache")})
    db.use_plugin(plugin)
    users.count()
    users.count(partition="by_region", partition_values={"region": "eu"})
    users.list(partition="by_region", partition_values={"region": "us"})

    stats = plugin.get_cache_stats()
    assert stats["driver"] == "PartitionAwareFilesystemCache"
    assert stats["size"] == 3  # nested partition folders included
    assert len(stats["keys"]) == 3
    unpartitioned = [k for k in stats["keys"] if "partition=" not in k]
    assert unpartitioned == [users.count.cache_key()]  # no partition= segment without partition values
    assert users.count.cache_key().startswith("cache/resource=users/action=count/")
    assert {k.split("/action=")[0] for k in stats["keys"]} == {
        "cache/resource=users",
        "cache/resource=users/partition=by_region/region=eu",
        "cache/resource=users/partition=by_region/region=us",
    }
    assert sorted(p.name for p in (tmp_path / "cache").rglob("region=*")) == ["region=eu", "region=us"]
