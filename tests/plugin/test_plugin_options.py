"""CachePlugin options: validated at construction, and each one behaving as named once installed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cachekit import CachePlugin
from cachekit.drivers.partition_filesystem import PartitionAwareFilesystemCache
from cachekit.errors import ConfigurationError, DriverNotFound
from cachekit.s3db import Database, Resource
from tests.conftest import FakeClock
from tests.plugin.conftest import S3Calls, count_lookups

pytestmark = pytest.mark.s3

EU = {"partition": "by_region", "partition_values": {"region": "eu"}}
US = {"partition": "by_region", "partition_values": {"region": "us"}}


# -- validation at construction -----------------------------------------------------------------------------------


def test_an_unknown_driver_name_is_driver_not_found() -> None:
    with pytest.raises(DriverNotFound, match="memcached"):
        CachePlugin(driver="memcached")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"driver": ""}, "driver"),
        ({"driver": 42}, "driver"),
        ({"strategy": "write-around"}, "strategy"),
        ({"method_policies": {"fetch": True}}, "fetch"),
        ({"method_policies": {"get": {"ttl_ms": 5}}}, "ttl_ms"),
        ({"method_policies": {"get": "yes"}}, "get"),
        ({"method_policies": {"get": {"min_hits_before_store": 0}}}, "min_hits_before_store"),
        ({"driver": "redis", "max_size": 10}, "max_size"),
        ({"drivers": [{"driver": "memory"}], "max_size": 10}, "max_size"),
        ({"drivers": []}, "drivers"),
        ({"include": "users"}, "include"),
        ({"exclude": ["users", 3]}, "exclude"),
        ({"invalidation": "everything"}, "invalidation"),
        ({"namespace": "--"}, "namespace"),
        ({"ttl": -1}, "ttl"),
        ({"config": ["max_size", 3]}, "config"),
    ],
    ids=lambda value: str(value) if isinstance(value, str) else None,
)
def test_bad_options_fail_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CachePlugin(**options)


def test_method_policies_that_are_not_a_dict_fail_with_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="method_policies"):
        CachePlugin(method_policies=["get"])  # type: ignore[arg-type]


def test_a_misspelt_option_names_itself() -> None:
    # A typed error naming the option, not a bare TypeError.
    with pytest.raises(ConfigurationError, match="drvier"):
        CachePlugin(drvier="redis")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "options",
    [
        {"retry_attempts": 0},
        {"retry_delay": -1},
        {"config": {"max_memory_percent": 5}},
        {"driver": "redis", "partition_aware": True},
    ],
    ids=["retry_attempts=0", "retry_delay=-1", "max_memory_percent=5", "partition_aware+redis"],
)
def test_options_checked_only_at_install_fail_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        CachePlugin(**options)


@pytest.mark.parametrize(
    "options",
    [{"retry_attempts": 0}, {"config": {"max_memory_percent": 5}}, {"config": {"no_such_option": 1}}],
    ids=["retry_attempts=0", "max_memory_percent=5", "unknown driver option"],
)
def test_options_checked_at_install_leave_the_database_untouched(
    db: Database, users: Resource, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        db.use_plugin(CachePlugin(**options))
    assert db.plugins == []
    assert not hasattr(users, "cache")
    db.use_plugin(CachePlugin())  # the slug is still free


def test_multi_tier_compression_in_a_tier_config_is_refused_with_the_option_named(db: Database) -> None:
    """The guide puts enableCompression in each tier; here it is a namespace option (one codec for all tiers)."""
    plugin = CachePlugin(drivers=[{"driver": "memory", "config": {"enable_compression": True}}])
    with pytest.raises(ConfigurationError, match="enable_compression"):
        db.use_plugin(plugin)


def test_valid_options_are_kept() -> None:
    plugin = CachePlugin(
        driver="Memory",
        ttl=dt.timedelta(minutes=2),
        max_size=10,
        include=["users"],
        exclude=("logs",),
        strategy=" Lazy-Promotion ",
        invalidation="resource",
    )
    assert plugin.ttl == 120.0
    assert plugin.config == {"max_size": 10}
    assert plugin.include == frozenset({"users"})
    assert plugin.exclude == frozenset({"logs"})
    assert plugin.strategy == "lazy-promotion"
    assert plugin.invalidation == "resource"
    assert repr(plugin) == "<CachePlugin 'cache' not installed>"
    with pytest.raises(ConfigurationError, match="not installed"):
        plugin.get_cache_stats()


# -- which resources are cached -----------------------------------------------------------------------------------


def test_plugin_resources_are_skipped_unless_included(db: Database, users: Resource) -> None:
    audit = db.create_resource("plg_audit")
    db.use_plugin(CachePlugin(driver="memory"))
    late_audit = db.create_resource("plg_late")
    assert hasattr(users, "cache")
    assert not hasattr(audit, "cache")
    assert not hasattr(late_audit, "cache")
    assert audit.count.__func__ is Resource.count  # type: ignore[attr-defined]


def test_include_names_the_only_cached_resources_plugin_ones_too(db: Database, users: Resource) -> None:
    audit = db.create_resource("plg_audit")
    db.use_plugin(CachePlugin(driver="memory", include=["plg_audit", "orders"]))
    orders = db.create_resource("orders")
    other = db.create_resource("other")
    assert hasattr(audit, "cache")
    assert hasattr(orders, "cache")
    assert not hasattr(users, "cache")
    assert not hasattr(other, "cache")
    audit.insert({"id": "a1"})
    assert audit.count() == audit.count() == 1
    assert audit.cache.stats().hits == 1


def test_exclude_is_never_cached(db: Database, users: Resource, s3_calls: S3Calls) -> None:
    db.use_plugin(CachePlugin(driver="memory", exclude=["users"], include=None))
    orders = db.create_resource("orders")
    assert not hasattr(users, "cache")
    assert hasattr(orders, "cache")
    s3_calls.reset()
    assert users.count() == users.count() == 3
    assert s3_calls.operations == ["ListObjectsV2", "ListObjectsV2"]


def test_exclude_wins_over_include(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory", include=["users"], exclude=["users"]))
    assert not hasattr(users, "cache")


def test_resources_created_after_install_are_wrapped_by_every_instance(db: Database) -> None:
    db.use_plugin(CachePlugin(driver="memory"))
    db.use_plugin(CachePlugin(driver="memory", namespace="second"))
    orders = db.create_resource("orders", partitions={"by_region": ["region"]})
    orders.insert({"id": "o1", "region": "eu"})
    assert orders.count(**EU) == 1
    first, second = orders.get_cache_namespace("cache"), orders.get_cache_namespace("cache--second")
    assert len(first.keys()) == len(second.keys()) == 1
    orders.insert({"id": "o2", "region": "eu"})
    assert first.keys() == [] == second.keys()
    assert orders.count(**EU) == 2


# -- method policies, TTL, max_size -------------------------------------------------------------------------------


def test_method_policies_from_the_design(db: Database, users: Resource, clock: FakeClock, s3_calls: S3Calls) -> None:
    db.use_plugin(
        CachePlugin(
            driver="memory",
            ttl=300,
            clock=clock,
            method_policies={"get": {"ttl": 30, "min_hits_before_store": 2}, "get_all": False},
        )
    )

    def lookups(read: Any) -> tuple[int, int]:
        with count_lookups(users) as seen:
            read()
        return seen.hits, seen.misses

    assert lookups(lambda: users.get("u1")) == (0, 1)  # first miss: not stored yet
    assert users.cache.keys() == []
    assert lookups(lambda: users.get("u1")) == (0, 1)  # second miss: stored
    assert lookups(lambda: users.get("u1")) == (1, 0)
    assert lookups(users.count) == (0, 1)  # other actions store on the first miss

    clock.advance(31)
    assert lookups(lambda: users.get("u1")) == (0, 1)  # get's own 30 s TTL has passed...
    assert lookups(users.count) == (1, 0)  # ...the plugin's 300 s has not
    clock.advance(270)
    assert lookups(users.count) == (0, 1)

    s3_calls.reset()
    assert lookups(users.get_all) == (0, 0)  # disabled: no lookup at all...
    assert lookups(users.get_all) == (0, 0)
    assert s3_calls.operations.count("ListObjectsV2") == 2  # ...every call reads S3
    stored = users.cache.keys()
    assert stored
    assert not any("action=get_all" in key for key in stored)


def test_get_stores_on_the_first_miss_by_default(db: Database, users: Resource) -> None:
    """The original's ``get`` needed two misses before storing, and that could not be lowered (§7 item 6)."""
    db.use_plugin(CachePlugin(driver="memory"))
    users.get("u1")
    with count_lookups(users) as seen:
        users.get("u1")
    assert seen.hits == 1


def test_max_payload_bytes_returns_large_results_uncached(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory", method_policies={"list": {"max_payload_bytes": 24}}))
    assert len(users.list()) == 3
    assert len(users.list(limit=1)) == 1
    assert users.count() == 3
    assert users.cache.keys() == [users.count.cache_key()]


def test_max_size_bounds_the_memory_driver(db: Database, users: Resource) -> None:
    plugin = CachePlugin(driver="memory", max_size=2)
    db.use_plugin(plugin)
    for doc_id in ("u1", "u2", "u3"):
        users.get(doc_id)
    assert plugin.driver.stats()["max_size"] == 2
    assert plugin.get_cache_stats()["size"] == 2
    assert plugin.driver.stats()["evictions"] == 1


def test_partition_aware_filesystem_keeps_a_folder_per_partition(db: Database, users: Resource, tmp_path: Any) -> None:
    plugin = CachePlugin(driver="filesystem", partition_aware=True, config={"directory": str(tmp_path / "pfs")})
    db.use_plugin(plugin)
    assert isinstance(plugin.driver, PartitionAwareFilesystemCache)
    users.count(**EU)
    users.count(**US)
    users.count()
    assert plugin.driver.clear_partition("users", "by_region", {"region": "eu"}) == 1
    with count_lookups(users) as seen:
        users.count(**US)
        users.count()
        users.count(**EU)
    assert (seen.hits, seen.misses) == (2, 1)


def test_resource_invalidation_clears_the_whole_resource_on_every_write(db: Database, users: Resource) -> None:
    """``invalidation="resource"`` is the original's behaviour: simple and safe, with a lower hit rate."""
    db.use_plugin(CachePlugin(driver="memory", invalidation="resource"))
    archive = db.create_resource("users_archive")
    archive.count()
    users.count(**US)
    users.get("u2")
    users.insert({"id": "u4", "region": "eu"})  # touches neither us nor u2...
    assert users.cache.keys() == []  # ...but everything of users is gone
    assert archive.cache.keys() == [archive.count.cache_key()]  # and users_archive is still not touched


def test_a_driver_instance_is_used_as_given(db: Database, users: Resource) -> None:
    from cachekit.drivers.memory import MemoryDriver

    driver = MemoryDriver(max_size=5)
    plugin = CachePlugin(driver=driver)
    db.use_plugin(plugin)
    users.count()
    assert plugin.driver is driver
    assert driver.size() == 1
    with pytest.raises(ConfigurationError, match="max_size"):  # options only apply to a driver built by name
        db.use_plugin(CachePlugin(driver=MemoryDriver(), namespace="other", config={"max_size": 3}))


def test_ttl_none_never_expires(db: Database, users: Resource, clock: FakeClock) -> None:
    db.use_plugin(CachePlugin(driver="memory", ttl=None, clock=clock))
    users.count()
    clock.advance(10 * 365 * 86400)
    with count_lookups(users) as seen:
        users.count()
    assert seen.hits == 1
