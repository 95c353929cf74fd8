"""``CachePlugin(publish_stats=...)`` (issue 20): the plugin's cache publishes its process's counters to the
database's bucket, where ``read_fleet`` (and ``cachekit stats --fleet --database URL``) finds them."""

from __future__ import annotations

import json
import uuid

import pytest

from cachekit import CachePlugin
from cachekit._tools.cli import main
from cachekit.errors import ConfigurationError
from cachekit.fleet import read_fleet
from cachekit.s3db import Database, Resource
from tests.servers import MotoServer


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


@pytest.mark.s3
def test_stats_fleet_through_the_database_url(moto_server: MotoServer, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = f"cachekit-fleet-{uuid.uuid4().hex[:10]}"
    url = f"s3://testing:testing@{bucket}/app?endpoint={moto_server.endpoint_url}&region=us-east-1"
    db = Database.connect(url, create_bucket=True)
    try:
        users = db.create_resource("users")
        plugin = CachePlugin(driver="s3", publish_stats=3600)
        db.use_plugin(plugin)
        users.insert({"id": "u1", "name": "Ada"})
        for _ in range(4):
            users.get("u1")
        assert plugin.cache is not None
        assert plugin.cache.stats_publisher is not None
        assert plugin.cache.stats_publisher.flush()
        capsys.readouterr()
        assert main(["stats", "--fleet", "--json", "--database", url, "--resource", "users"]) == 0
        found = json.loads(capsys.readouterr().out)
    finally:
        db.close()
    (row,) = found["rows"]
    assert (row["namespace"], row["resource"], row["action"], row["hits"], row["misses"]) == (
        "cache", "users", "get", 3, 1)
