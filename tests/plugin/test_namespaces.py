"""Several CachePlugin instances on one database: slugs, stacking, skip_cache, stop, and who owns resource.cache.

The original made ``resource.cache`` last-installed-wins while ``getCacheKeyResolver()`` was first-wins, and
``getCacheDriver('cache--hot-path')`` returned null after ``usePlugin(..., 'cacheHot')`` (notes §5.1, §5.3).
"""

from __future__ import annotations

from typing import Any

import pytest

from cachekit import MISSING, CachePlugin
from cachekit.drivers.memory import MemoryDriver
from cachekit.drivers.s3 import S3Driver
from cachekit.errors import ConfigurationError, DriverError
from cachekit.plugin import slugify
from cachekit.s3db import Database, Resource, ValidationError
from tests.plugin.conftest import PARTITIONS, S3Calls, count_lookups, object_keys

pytestmark = pytest.mark.s3

EU = {"partition": "by_region", "partition_values": {"region": "eu"}}


def change_behind_the_cache(db: Database, doc_id: str, changes: dict[str, Any]) -> None:
    """Update a document through another database object without plugins: no cache hears of it."""
    with Database(client=db.client, bucket=db.bucket, prefix=db.prefix) as other_server:
        other_server.create_resource("users", partitions=PARTITIONS).update(doc_id, changes)


# -- slugs --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slug"),
    [("hot-path", "hot-path"), ("cache_hot", "cache-hot"), ("  Analytics Cold!! ", "analytics-cold"), ("a--b", "a-b")],
)
def test_slugify(text: str, slug: str) -> None:
    assert slugify(text) == slug


def test_slugs_from_namespace_and_from_the_use_plugin_name(db: Database, users: Resource) -> None:
    default, explicit, named, both = (
        CachePlugin(),
        CachePlugin(namespace="hot-path"),
        CachePlugin(),
        CachePlugin(namespace="analytics"),
    )
    assert default.slug == "cache"
    assert explicit.slug == "cache--hot-path"
    db.use_plugin(default)
    db.use_plugin(explicit, "cacheHot")  # an explicit namespace wins over the name
    db.use_plugin(named, "cache_hot")  # no namespace: the name becomes it
    db.use_plugin(both, "cacheCold")
    assert [p.slug for p in db.plugins] == ["cache", "cache--hot-path", "cache--cache-hot", "cache--analytics"]
    for plugin in db.plugins:
        assert users.get_cache_namespace(plugin.slug).slug == plugin.slug
    assert repr(named) == "<CachePlugin 'cache--cache-hot' installed>"


def test_the_name_cache_keeps_the_base_slug(db: Database) -> None:
    plugin = CachePlugin()
    db.use_plugin(plugin, "cache")
    assert plugin.slug == "cache"


def test_installing_the_same_slug_twice_is_a_configuration_error(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory"))
    with pytest.raises(ConfigurationError, match="slug 'cache'"):
        db.use_plugin(CachePlugin(driver="memory"))
    db.use_plugin(CachePlugin(namespace="hot"))
    with pytest.raises(ConfigurationError, match="cache--hot"):
        db.use_plugin(CachePlugin(), "hot")
    assert [p.slug for p in db.plugins] == ["cache", "cache--hot"]
    users.count()  # the database still works, with the two instances installed


def test_installing_one_plugin_object_twice_fails(db: Database, s3_client: Any, s3_bucket: str) -> None:
    plugin = CachePlugin()
    db.use_plugin(plugin)
    with pytest.raises(ValidationError, match="already installed"):
        db.use_plugin(plugin)
    with Database(client=s3_client, bucket=s3_bucket, prefix="other") as second_db:
        with pytest.raises(ConfigurationError, match="already installed"):
            second_db.use_plugin(plugin)
        assert second_db.plugins == []


# -- the guide's multi-instance example ---------------------------------------------------------------------------


def test_the_guides_multi_instance_example(db: Database, users: Resource, s3_client: Any, s3_bucket: str) -> None:
    db.use_plugin(CachePlugin(driver="memory", namespace="hot-path", ttl=5), "cacheHot")
    db.use_plugin(CachePlugin(driver="s3", namespace="analytics", ttl=60), "cacheCold")

    hot_driver = users.get_cache_driver("cache--hot-path")
    cold_driver = users.get_cache_driver("cache--analytics")
    assert isinstance(hot_driver, MemoryDriver)
    assert isinstance(cold_driver, S3Driver)
    assert users.cache is users.get_cache_namespace("cache--hot-path")  # the first installed instance
    assert users.cache.driver is hot_driver

    analytics_key = users.get_cache_key_resolver("cache--analytics")("list")
    assert analytics_key.startswith("cache--analytics/resource=users/action=list/")
    assert cold_driver.get(analytics_key) is MISSING
    users.list()
    assert cold_driver.get(analytics_key) is not MISSING  # cached = await coldDriver.get(analyticsKey)
    assert hot_driver.get(users.get_cache_key_resolver("cache--hot-path")("list")) is not MISSING
    # The S3 driver's objects carry the instance's slug (the original always wrote plugin=cache/).
    assert [k for k in object_keys(s3_client, s3_bucket, "app/plugin=") if "resource=users" in k] == [
        "app/plugin=cache--analytics/" + analytics_key
    ]


def test_unknown_slug_lookups_name_the_installed_ones(db: Database, cached_users: Resource) -> None:
    with pytest.raises(LookupError, match=r"cache--nope.*\['cache'\]"):
        cached_users.get_cache_namespace("cache--nope")
    with pytest.raises(LookupError, match="cache--nope"):
        cached_users.get_cache_driver("cache--nope")
    with pytest.raises(LookupError, match="does not cache a resource named 'ghosts'"):
        db.plugins[0].resource_cache("ghosts")  # type: ignore[attr-defined]


# -- the first installed instance owns resource.cache -------------------------------------------------------------


def test_the_first_installed_instance_owns_resource_cache(db: Database, users: Resource) -> None:
    first, second = CachePlugin(driver="memory"), CachePlugin(driver="memory", namespace="second")
    db.use_plugin(first)
    db.use_plugin(second)
    late = db.create_resource("late")  # created after both: the same rule
    for resource in (users, late):
        assert resource.cache.slug == "cache"
        assert resource.cache.driver is first.driver
        # Every accessor without a slug names the same instance (the original mixed first- and last-wins).
        assert resource.get_cache_namespace() is resource.cache
        assert resource.get_cache_driver() is first.driver
        assert resource.get_cache_key_resolver()("count") == resource.cache.key_for("count")
        assert resource.cache_key_for("count").startswith("cache/")
        assert resource.get_cache_namespace("cache--second").driver is second.driver


def test_when_the_owner_stops_the_next_instance_owns_resource_cache(db: Database, users: Resource) -> None:
    first, second = CachePlugin(driver="memory"), CachePlugin(driver="memory", namespace="second")
    db.use_plugin(first)
    db.use_plugin(second)
    first.stop()
    assert users.cache.slug == "cache--second"
    with pytest.raises(LookupError):
        users.get_cache_namespace("cache")
    second.stop()
    assert users.cache is None
    with pytest.raises(LookupError, match="no cache is installed"):
        users.get_cache_namespace()


# -- stacked instances --------------------------------------------------------------------------------------------


@pytest.fixture
def stacked(db: Database, users: Resource) -> tuple[Any, Any]:
    """``(inner, outer)`` facades of two memory instances on ``users``: installed first, installed second."""
    db.use_plugin(CachePlugin(driver="memory"))
    db.use_plugin(CachePlugin(driver="memory", namespace="outer"))
    return users.get_cache_namespace("cache"), users.get_cache_namespace("cache--outer")


def test_stacked_instances_both_cache(users: Resource, stacked: tuple[Any, Any], s3_calls: S3Calls) -> None:
    inner, outer = stacked
    users.count(**EU)
    users.get("u1")
    assert len(inner.keys()) == len(outer.keys()) == 2
    s3_calls.reset()
    with count_lookups(outer) as seen_outer, count_lookups(inner) as seen_inner:
        users.count(**EU)
        users.get("u1")
    assert (seen_outer.hits, seen_inner.hits + seen_inner.misses) == (2, 0)  # the outer answers; inner not asked
    assert s3_calls.operations == []

    outer.clear_all()  # the outer misses, the inner still answers
    s3_calls.reset()
    with count_lookups(inner) as seen_inner:
        assert users.count(**EU) == 2
    assert seen_inner.hits == 1
    assert s3_calls.operations == []


def test_stacked_instances_both_invalidate(users: Resource, stacked: tuple[Any, Any]) -> None:
    inner, outer = stacked
    assert users.count() == 3
    users.get("u1")
    users.insert({"id": "u4", "region": "us"})
    users.update("u1", {"name": "Ada L."})
    assert inner.keys() == [] == outer.keys()
    assert users.count() == 4
    assert users.get("u1")["name"] == "Ada L."
    outer.clear_all()
    assert users.count() == 4  # from the inner instance, which was invalidated as well


def test_skip_cache_bypasses_every_stacked_instance(db: Database, users: Resource, stacked: tuple[Any, Any]) -> None:
    inner, outer = stacked
    assert users.get("u1")["name"] == "Ada"
    change_behind_the_cache(db, "u1", {"name": "Ada L."})
    with count_lookups(outer) as seen_outer, count_lookups(inner) as seen_inner:
        assert users.get("u1", skip_cache=True)["name"] == "Ada L."
        assert users.count(skip_cache=True) == 3
    assert (seen_outer.hits, seen_outer.misses, seen_inner.hits, seen_inner.misses) == (0, 0, 0, 0)
    assert users.get("u1")["name"] == "Ada"  # skip_cache stored nothing: the old entries are untouched
    assert len(inner.keys()) == len(outer.keys()) == 1


def test_stop_unwraps_closes_and_leaves_the_other_instance_working(
    db: Database, users: Resource, s3_calls: S3Calls
) -> None:
    first, second = CachePlugin(driver="memory"), CachePlugin(driver="memory", namespace="second")
    db.use_plugin(first)
    db.use_plugin(second)
    users.count()
    users.get("u1")

    second.stop()  # the outer one
    assert second.driver.size() == 0  # closed: the memory driver dropped its entries
    s3_calls.reset()
    with count_lookups(users.get_cache_namespace("cache")) as seen:
        assert users.count() == 3
    assert seen.hits == 1
    assert s3_calls.operations == []  # the first instance still caches
    users.insert({"id": "u4", "region": "eu"})
    assert users.count() == 4  # and still invalidates
    assert second.driver.size() == 0  # the stopped one no longer listens

    first.stop()
    assert users.count.__func__ is Resource.count  # type: ignore[attr-defined]  # fully unwrapped
    s3_calls.reset()
    assert users.count() == users.count() == 4
    assert s3_calls.operations == ["ListObjectsV2", "ListObjectsV2"]  # every read goes to S3


def test_stop_the_inner_instance_keeps_the_outer_one_in_front(db: Database, users: Resource, s3_calls: S3Calls) -> None:
    first, second = CachePlugin(driver="memory"), CachePlugin(driver="memory", namespace="second")
    db.use_plugin(first)
    db.use_plugin(second)
    first.stop()  # taken out of the middle of the chain
    assert first.driver.size() == 0
    users.count()
    s3_calls.reset()
    with count_lookups(users.get_cache_namespace("cache--second")) as seen:
        assert users.count() == 3
    assert (seen.hits, seen.misses) == (1, 0)
    assert s3_calls.operations == []
    assert first.driver.size() == 0  # the stopped inner instance stores nothing
    users.update("u1", {"region": "us"})
    assert users.count(**EU) == 1
    second.stop()
    assert users.count.__func__ is Resource.count  # type: ignore[attr-defined]


def test_database_close_stops_every_instance(s3_client: Any, s3_bucket: str, redis_url: str, redis_prefix: str) -> None:
    db = Database(client=s3_client, bucket=s3_bucket, prefix="app")
    users = db.create_resource("users")
    redis_plugin = CachePlugin(
        driver="redis", namespace="shared", config={"url": redis_url, "key_prefix": redis_prefix}
    )
    db.use_plugin(CachePlugin(driver="memory"))
    db.use_plugin(redis_plugin)
    users.insert({"id": "u1"})
    users.get("u1")
    pool = redis_plugin.driver.client.connection_pool
    assert pool._available_connections  # the read used a connection
    db.close()
    assert db.plugins == []
    assert users.get.__func__ is Resource.get  # type: ignore[attr-defined]
    # The Redis connections are released (the original kept them open after stop, notes §7 item 12).
    assert all(connection._sock is None for connection in pool._available_connections)
    with pytest.raises(DriverError, match="closed"):
        redis_plugin.driver.client  # noqa: B018


def test_two_instances_on_one_redis_do_not_see_each_others_keys(
    db: Database, users: Resource, redis_url: str, redis_prefix: str
) -> None:
    config = {"url": redis_url, "key_prefix": redis_prefix}
    db.use_plugin(CachePlugin(driver="redis", config=config))
    db.use_plugin(CachePlugin(driver="redis", namespace="hot-path", config=config))
    users.count()
    default, hot = users.get_cache_namespace("cache"), users.get_cache_namespace("cache--hot-path")
    assert default.keys() != hot.keys()
    assert len(default.keys()) == len(hot.keys()) == 1
    hot.clear_all()
    assert len(default.keys()) == 1
    assert hot.keys() == []


def test_a_resource_created_after_stop_is_not_wrapped(db: Database) -> None:
    plugin = CachePlugin(driver="memory")
    db.use_plugin(plugin)
    plugin.stop()
    late = db.create_resource("late")
    assert getattr(late, "cache", None) is None
    assert late.get.__func__ is Resource.get  # type: ignore[attr-defined]


def test_a_stopped_instance_frees_its_slug(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory")).stop()
    replacement = CachePlugin(driver="memory")
    db.use_plugin(replacement)
    assert users.cache.driver is replacement.driver
