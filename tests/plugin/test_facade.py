"""``resource.cache``: the facade table of the guide, and warmers that fill the entries reads use.

The original's ``warmPage(forceRefresh)`` stored under a key reads never produce, and partition warming warmed
nothing (notes §5.2, §7 items 10 and 14). Here every warmer goes through the read's own key resolver: after
warming, the documents are deleted from S3 behind the store's back and each read is still answered, as a hit.
"""

from __future__ import annotations

from typing import Any

import pytest

from cachekit import MISSING, CachePlugin, CacheStats
from cachekit.drivers.memory import MemoryDriver
from cachekit.errors import ConfigurationError, KeyResolverError
from cachekit.s3db import Database, Resource
from tests.conftest import FakeClock
from tests.plugin.conftest import PARTITIONS, S3Calls, count_lookups, wipe_documents

pytestmark = pytest.mark.s3

EU = {"partition": "by_region", "partition_values": {"region": "eu"}}
US = {"partition": "by_region", "partition_values": {"region": "us"}}


def go_offline_and_read(db: Database, resource: Resource, reads: dict[str, Any]) -> None:
    """Delete the documents from S3 directly, then each read must still return its warmed value, from the cache."""
    wipe_documents(db)
    assert resource.count.uncached() == 0  # the store really is empty now
    with count_lookups(resource) as seen:
        got = {name: read() for name, (read, _) in reads.items()}
    assert got == {name: expected for name, (_, expected) in reads.items()}
    assert (seen.hits, seen.misses) == (len(reads), 0)


# -- identity, keys, pass-through ---------------------------------------------------------------------------------


def test_driver_get_driver_and_driver_name(db: Database, users: Resource) -> None:
    plugin = CachePlugin(driver="memory")
    db.use_plugin(plugin)
    assert isinstance(users.cache.driver, MemoryDriver)
    assert users.cache.get_driver() is users.cache.driver is plugin.driver
    assert users.cache.driver_name == "MemoryDriver"
    assert users.get_cache_driver() is plugin.driver
    assert "MemoryDriver" in repr(users.cache)


def test_key_for_is_the_key_each_read_uses(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory"))
    cache = users.cache
    assert cache.key_for("page", params={"offset": 0, "size": 25}) == users.page.cache_key(page=1, size=25)
    assert cache.key_for("page", params={"offset": 50, "size": 25}) == users.page.cache_key(page=3, size=25)
    assert cache.key_for("page", {"offset": 0, "size": 25}, **EU) == users.page.cache_key(size=25, **EU)
    assert cache.key_for("count", **EU) == users.count.cache_key(**EU)
    assert cache.key_for("get", {"id": "u1"}) == users.get.cache_key("u1")
    assert cache.key_for("query", {"filter": {"role": "admin"}, "limit": 5}) == users.query.cache_key(
        {"role": "admin"}, limit=5
    )
    assert cache.resolve("list") == cache.key_resolver()("list") == users.cache_key_for("list")
    assert cache.key_for("list", {"limit": 10}) != cache.key_for("list", {"limit": 100})  # §7 item 1
    assert cache.key_for("count", **EU) != cache.key_for("count", **US)
    assert cache.key_for("count").startswith("cache/resource=users/action=count/")
    assert "/partition=by_region/region=eu/action=count/" in cache.key_for("count", **EU)

    users.page(page=1, size=25)
    assert cache.get(cache.key_for("page", params={"offset": 0, "size": 25}))["total"] == 3  # the stored page


def test_key_for_an_action_the_resource_does_not_cache(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory"))
    with pytest.raises(KeyResolverError, match="content"):
        users.cache.key_for("content", {"id": "u1"})


def test_driver_methods_are_on_driver_and_a_typo_is_an_attribute_error(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory"))
    users.count()
    assert users.cache.get_memory_stats()["memory_usage"]["current"] > 0
    assert users.cache.driver.size() == 1  # the driver's own methods are on .driver
    with pytest.raises(AttributeError, match=r"no attribute 'size'; the driver's is resource.cache.driver.size"):
        users.cache.size()  # a typo or a driver method never reaches the driver silently
    with pytest.raises(AttributeError, match=r"no attribute 'no_such_driver_method'$"):
        users.cache.no_such_driver_method()
    with pytest.raises(AttributeError):
        users.cache._private_thing  # noqa: B018


def test_stats_is_the_namespace_cache_stats(db: Database, users: Resource) -> None:
    plugin = CachePlugin(driver="memory")
    db.use_plugin(plugin)
    users.count()
    users.count()
    stats = users.cache.stats()
    assert isinstance(stats, CacheStats)
    assert (stats.hits, stats.misses, stats.sets) == (1, 1, 1)
    assert plugin.get_cache_stats()["stats"]["hits"] == 1


def test_get_cache_stats_reports_driver_size_and_keys(db: Database, users: Resource) -> None:
    plugin = CachePlugin(driver="memory")
    db.use_plugin(plugin)
    archive = db.create_resource("users_archive")
    users.count()
    users.get("u1")
    archive.count()
    stats = plugin.get_cache_stats()
    assert stats["driver"] == "MemoryDriver"
    assert stats["size"] == 3
    assert stats["keys"] == sorted([users.count.cache_key(), users.get.cache_key("u1"), archive.count.cache_key()])
    assert plugin.clear_all_cache() == 3
    assert plugin.get_cache_stats()["size"] == 0


# -- warmers ------------------------------------------------------------------------------------------------------


def test_warm_page_by_offset_is_the_page_a_read_hits_offline(db: Database, cached_users: Resource) -> None:
    users = cached_users
    first = users.cache.warm_page(offset=0, size=25, return_data=True)
    second = users.cache.warm_page(offset=2, size=2, return_data=True)
    eu = users.cache.warm_page(offset=0, size=1, return_data=True, **EU)
    assert [doc["id"] for doc in first["items"]] == ["u1", "u2", "u3"]
    assert [doc["id"] for doc in second["items"]] == ["u3"]
    go_offline_and_read(
        db,
        users,
        {
            "page 1": (lambda: users.page(page=1, size=25), first),
            "page() defaults": (users.page, first),
            "page 2 of 2": (lambda: users.page(2, 2), second),
            "eu page 1": (lambda: users.page(size=1, **EU), eu),
        },
    )


def test_every_warmer_fills_the_entry_its_read_uses(db: Database, cached_users: Resource) -> None:
    users = cached_users
    cache = users.cache
    assert cache.warm_item("u1") is None  # return_data=False by default
    ada = cache.warm_item("u2", return_data=True)
    assert ada["name"] == "Bob"
    many = cache.warm_many(["u1", "u3"], return_data=True)
    everything = cache.warm_list(return_data=True)
    first_two = cache.warm_list(limit=2, return_data=True)
    eu_list = cache.warm_list(return_data=True, **EU)
    admins = cache.warm_query({"role": "admin"}, return_data=True)
    eu_users = cache.warm_query({"role": "user"}, return_data=True, **EU)
    total = cache.warm_count(return_data=True)
    us_total = cache.warm_count(return_data=True, **US)
    go_offline_and_read(
        db,
        users,
        {
            "get u1": (lambda: users.get("u1")["name"], "Ada"),
            "get u2": (lambda: users.get("u2"), ada),
            "get_many": (lambda: users.get_many(["u1", "u3"]), many),
            "list": (users.list, everything),
            "list limit 2": (lambda: users.list(limit=2), first_two),
            "list eu": (lambda: users.list(**EU), eu_list),
            "query admin": (lambda: users.query({"role": "admin"}), admins),
            "query eu users": (lambda: users.query({"role": "user"}, **EU), eu_users),
            "count": (users.count, total),
            "count us": (lambda: users.count(**US), us_total),
        },
    )
    assert (total, us_total, len(everything), len(first_two)) == (3, 1, 3, 2)


def test_warm_partition_warms_count_and_list_of_every_combination(db: Database, cached_users: Resource) -> None:
    users = cached_users
    assert users.cache.warm_partition("by_region") == 2  # eu and us, found in the data
    go_offline_and_read(
        db,
        users,
        {
            "count eu": (lambda: users.count(**EU), 2),
            "count us": (lambda: users.count(**US), 1),
            "list eu": (lambda: [d["id"] for d in users.list(**EU)], ["u1", "u3"]),
            "list us": (lambda: [d["id"] for d in users.list(**US)], ["u2"]),
        },
    )


def test_warm_partition_with_values_warms_that_combination_only(db: Database, cached_users: Resource) -> None:
    users = cached_users
    assert users.cache.warm_partition("by_region", {"region": "us"}) == 1
    assert sorted(users.cache.keys()) == sorted([users.count.cache_key(**US), users.list.cache_key(**US)])
    with pytest.raises(ConfigurationError, match="by_country"):
        users.cache.warm_partition("by_country")


def test_warm_warms_the_first_page_the_count_and_every_partition(db: Database, cached_users: Resource) -> None:
    users = cached_users
    assert users.cache.warm(sample_size=10) == {"resource": "users", "partitions_warmed": 2}
    page = users.page.uncached(size=10)
    go_offline_and_read(
        db,
        users,
        {
            "page size 10": (lambda: users.page(size=10), page),
            "count": (users.count, 3),
            "count eu": (lambda: users.count(**EU), 2),
            "list us": (lambda: [d["id"] for d in users.list(**US)], ["u2"]),
        },
    )


def test_warm_without_partitions(cached_users: Resource) -> None:
    users = cached_users
    assert users.cache.warm(include_partitions=False) == {"resource": "users", "partitions_warmed": 0}
    assert len(users.cache.keys()) == 2  # page 1 of 100 and count


def test_force_refresh_reads_the_source_even_when_cached(db: Database, cached_users: Resource) -> None:
    users = cached_users
    users.cache.warm_item("u1")
    users.cache.warm_page(offset=0, size=25)
    with Database(client=db.client, bucket=db.bucket, prefix="app") as other_server:  # no plugin: no invalidation
        other_server.create_resource("users", partitions=PARTITIONS).update("u1", {"name": "Ada L."})

    users.cache.warm_item("u1")
    assert users.get("u1")["name"] == "Ada"  # without force_refresh the cached entry stays
    assert users.cache.warm_item("u1", force_refresh=True, return_data=True)["name"] == "Ada L."
    assert users.get("u1")["name"] == "Ada L."
    users.cache.warm_page(offset=0, size=25, force_refresh=True)
    with count_lookups(users) as seen:
        assert users.page(page=1, size=25)["items"][0]["name"] == "Ada L."  # the refreshed entry is the read's
    assert seen.hits == 1


def test_force_refresh_on_a_stacked_instance_reads_the_source(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory"))
    db.use_plugin(CachePlugin(driver="memory", namespace="outer"))
    users.get("u1")  # cached by both instances
    with Database(client=db.client, bucket=db.bucket, prefix="app") as other_server:  # no plugin: no invalidation
        other_server.create_resource("users", partitions=PARTITIONS).update("u1", {"name": "Ada L."})
    outer = users.get_cache_namespace("cache--outer")
    assert outer.warm_item("u1", force_refresh=True, return_data=True)["name"] == "Ada L."


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.warm_item(""), "needs an id"),
        (lambda c: c.warm_item(None), "needs an id"),
        (lambda c: c.warm_many([]), "non-empty list"),
        (lambda c: c.warm_many("u1"), "non-empty list"),
        (lambda c: c.warm_page(offset=-1, size=25), "offset"),
        (lambda c: c.warm_page(offset=0, size=0), "size"),
    ],
    ids=["empty id", "None id", "no ids", "a str of ids", "negative offset", "zero size"],
)
def test_warmers_reject_bad_arguments(cached_users: Resource, call: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        call(cached_users.cache)


def test_warm_item_stores_even_when_the_policy_waits_for_repeated_misses(db: Database, users: Resource) -> None:
    db.use_plugin(CachePlugin(driver="memory", method_policies={"get": {"min_hits_before_store": 2}}))
    users.cache.warm_item("u1")
    with count_lookups(users) as seen:
        users.get("u1")
    assert seen.hits == 1


# -- invalidation and clearing ------------------------------------------------------------------------------------


def test_invalidate_without_arguments_clears_the_resource_only(db: Database, cached_users: Resource) -> None:
    users = cached_users
    archive = db.create_resource("users_archive")
    archive.count()
    users.count()
    users.get("u1")
    users.count(**EU)
    assert users.cache.invalidate() == 1  # one scope bumped: the resource's
    assert users.cache.keys() == []
    assert archive.cache.keys() == [archive.count.cache_key()]


def test_clear_all_removes_this_resources_entries_of_this_instance_only(db: Database, users: Resource) -> None:
    first, second = CachePlugin(driver="memory"), CachePlugin(driver="memory", namespace="second")
    db.use_plugin(first)
    db.use_plugin(second)
    archive = db.create_resource("users_archive")
    users.count()  # stored by both instances
    archive.count()
    assert users.cache.clear_all() == 1
    assert users.cache.keys() == []
    assert users.get_cache_namespace("cache--second").keys() == [
        users.get_cache_namespace("cache--second").key_for("count")
    ]
    # With stacked instances, resource.count.cache_key() is the outermost (last installed) instance's key.
    assert archive.cache.keys() == [archive.cache.key_for("count")]


def test_the_guides_cache_management_example(db: Database, users: Resource, s3_calls: S3Calls) -> None:
    """The "Cache management namespace" example, line by line."""
    db.use_plugin(CachePlugin(driver="memory"))
    db.use_plugin(CachePlugin(driver="memory", namespace="analytics"))
    cache = users.cache

    cache.warm_page(offset=0, size=25, force_refresh=True)
    cache.warm_item("u1", force_refresh=True)
    page_key = cache.key_for("page", params={"offset": 0, "size": 25})
    cached_payload = cache.get(page_key)
    assert [doc["id"] for doc in cached_payload["items"]] == ["u1", "u2", "u3"]
    assert cache.get(cache.key_for("get", {"id": "u1"}))["name"] == "Ada"

    cache.invalidate(id="u1")
    assert cache.driver.get(cache.key_for("get", {"id": "u1"})) is MISSING
    assert cache.get(cache.key_for("page", params={"offset": 0, "size": 25})) is None  # the page held u1

    analytics = users.get_cache_namespace("cache--analytics")
    analytics.warm_list(**EU)
    s3_calls.reset()
    with count_lookups(analytics) as seen:
        assert [doc["id"] for doc in users.list(**EU)] == ["u1", "u3"]
    assert (seen.hits, seen.misses) == (1, 0)  # the outer (analytics) instance answered...
    assert s3_calls.operations == []  # ...without reaching S3


def test_get_and_set_with_the_plugin_ttl_and_clock(db: Database, users: Resource, clock: FakeClock) -> None:
    db.use_plugin(CachePlugin(driver="memory", ttl=60, clock=clock))
    users.count()
    users.cache.set("note", {"n": 1})
    clock.advance(59)
    assert users.cache.get("note") == {"n": 1}
    with count_lookups(users) as early:
        users.count()
    clock.advance(2)
    assert users.cache.get("note", "gone") == "gone"
    with count_lookups(users) as late:
        users.count()
    assert (early.hits, late.misses) == (1, 1)
