"""``CachePlugin(publish_stats=...)`` (issue 20): the plugin's cache publishes its process's counters to the
database's bucket, where ``read_fleet`` (and ``cachekit stats --fleet --database URL``) finds them."""

from __future__ import annotations

import pytest

from cachekit import CachePlugin
from cachekit.errors import ConfigurationError
from cachekit.fleet import read_fleet
from cachekit.s3db import Database, Resource


def test_the_plugin_publishes_to_the_databases_bucket(db: Database, users: Resource) -> None:
    plugin = CachePlugin(driver="s3", publish_stats=3600)
    db.use_plugin(plugin)
    for _ in range(3):
        users.get("u1")
    cache = plugin.cache
    assert cache is not None
    assert cache.stats_publisher is not None
    assert cache.stats_publisher.flush()
    rows = {(row["resource"], row["action"]): row for row in read_fleet(cache.driver, plugin.slug).rows()}
    assert (rows[("users", "get")]["hits"], rows[("users", "get")]["misses"]) == (2, 1)


def test_publish_stats_is_checked_when_the_plugin_is_built() -> None:
    with pytest.raises(ConfigurationError, match="publish_stats must be"):
        CachePlugin(publish_stats=-3)
