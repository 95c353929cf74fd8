"""``cachekit keys/stats/clear --namespace/--resource/--plugin/--database``: no storage prefixes to know.

Entries are made by the public API (``@cached`` reads, a ``CachePlugin`` on an s3db database) and compared with
what that API reports (``.cache_key(...)``, ``Cache.keys()``), never with hand-written key strings.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache, cached
from tests.cli.test_cli import cachekit, lines_of
from tests.servers import MotoServer


class Source:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, id: str) -> dict[str, str]:
        self.calls += 1
        return {"id": id}


@pytest.fixture
def app_cache(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A filesystem cache an application filled: users and orders in namespace 'app', users in the default."""
    config = {"directory": str(tmp_path / "cache")}
    keys: dict[str, Any] = {}
    with Cache(driver="filesystem", namespace="app", config=config) as app, Cache(
        driver="filesystem", config=config
    ) as default:
        get_user = cached(action="get", namespace=app, resource="users")(Source())
        get_order = cached(action="get", namespace=app, resource="orders")(Source())
        get_default_user = cached(action="get", namespace=default, resource="users")(Source())
        for i in range(3):
            get_user(f"u{i}")
        get_order("o1")
        get_default_user("u9")
        keys["users"] = sorted(get_user.cache_key(f"u{i}") for i in range(3))
        keys["orders"] = [get_order.cache_key("o1")]
        keys["default users"] = [get_default_user.cache_key("u9")]
        keys["app"] = sorted(app.keys())
    return json.dumps(config), keys


def test_keys_of_a_namespace_and_of_a_resource(app_cache: tuple[str, dict[str, Any]]) -> None:
    config, keys = app_cache
    fs = ("--driver", "filesystem", "--config", config)
    assert lines_of(cachekit("keys", *fs, "--namespace", "app")) == keys["app"]
    assert lines_of(cachekit("keys", *fs, "--namespace", "app", "--resource", "users")) == keys["users"]
    assert lines_of(cachekit("keys", *fs, "--namespace", "app", "--resource", "orders")) == keys["orders"]
    # --resource alone: the namespace Cache(...) uses when given none
    assert lines_of(cachekit("keys", *fs, "--resource", "users")) == keys["default users"]


def test_keys_that_match_nothing_say_so_on_stderr(app_cache: tuple[str, dict[str, Any]]) -> None:
    config, _ = app_cache
    result = cachekit("keys", "--driver", "filesystem", "--config", config, "--namespace", "app", "--resource", "nope")
    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr.strip() == "cachekit: no keys found of resource 'nope' in namespace 'app'"


def test_clear_a_resource_leaves_the_others(app_cache: tuple[str, dict[str, Any]]) -> None:
    config, keys = app_cache
    fs = ("--driver", "filesystem", "--config", config)
    result = cachekit("clear", *fs, "--namespace", "app", "--resource", "users", "--yes")
    assert lines_of(result) == ["Removed 3 keys of resource 'users' in namespace 'app'."]
    assert lines_of(cachekit("keys", *fs, "--namespace", "app")) == keys["orders"]
    assert lines_of(cachekit("keys", *fs, "--resource", "users")) == keys["default users"]


def test_stats_of_a_resource(app_cache: tuple[str, dict[str, Any]]) -> None:
    config, keys = app_cache
    result = cachekit("stats", "--driver", "filesystem", "--config", config, "--namespace", "app",
                      "--resource", "users", "--json")
    stats = json.loads(lines_of(result) and result.stdout)
    assert (stats["namespace"], stats["resource"], stats["keys_under_prefix"]) == ("app", "users", 3)
    assert stats["size"] == len(keys["app"]) + len(keys["default users"])


def test_namespace_and_plugin_together_is_a_usage_error(app_cache: tuple[str, dict[str, Any]]) -> None:
    config, _ = app_cache
    result = cachekit("keys", "--driver", "filesystem", "--config", config, "--namespace", "app", "--plugin")
    assert result.returncode == 2
    assert "not both" in result.stderr


# -- the plugin's layout ----------------------------------------------------------------------------------------


@pytest.mark.s3
def test_the_plugins_s3_cache_through_its_database(moto_server: MotoServer) -> None:
    from cachekit import CachePlugin
    from cachekit.s3db import Database

    bucket = f"cachekit-cli-{uuid.uuid4().hex[:10]}"
    url = f"s3://testing:testing@{bucket}/app?endpoint={moto_server.endpoint_url}&region=us-east-1"
    db = Database.connect(url, create_bucket=True)
    try:
        users, orders = db.create_resource("users"), db.create_resource("orders")
        main, hot = CachePlugin(driver="s3"), CachePlugin(driver="s3", namespace="hot-path")
        db.use_plugin(main)
        db.use_plugin(hot)
        users.insert({"id": "u1", "name": "Ada"})
        orders.insert({"id": "o1", "total": 3})
        users.get("u1"), users.count(), orders.get("o1")
        assert main.cache is not None
        assert hot.cache is not None
        order_key = orders.cache.key_for("get", {"id": "o1"})
        all_keys, hot_keys = sorted(main.cache.keys()), sorted(hot.cache.keys())
        user_keys = [k for k in all_keys if k != order_key]
        assert len(all_keys) == 3
        assert hot_keys  # the stacked instance cached the same reads under its own slug

        listed = lines_of(cachekit("keys", "--database", url, "--resource", "users"))
        assert listed == user_keys
        assert len(listed) == 2
        assert lines_of(cachekit("keys", "--database", url)) == all_keys
        assert lines_of(cachekit("keys", "--database", url, "--plugin", "hot-path")) == hot_keys
        assert lines_of(cachekit("keys", "--database", url, "--plugin", "cache--hot-path")) == hot_keys

        result = cachekit("clear", "--database", url, "--resource", "users", "--yes")
        assert lines_of(result) == ["Removed 2 keys of resource 'users' in namespace 'cache'."]
        assert sorted(main.cache.keys()) == [order_key]
        assert sorted(hot.cache.keys()) == hot_keys  # another instance's entries stay
        assert users.get("u1", skip_cache=True)["name"] == "Ada"  # documents are not cache entries
    finally:
        db.close()


def test_database_with_another_driver_is_a_usage_error() -> None:
    result = cachekit("keys", "--database", "s3://k:s@b/app?endpoint=http://127.0.0.1:9", "--driver", "redis")
    assert result.returncode == 2
    assert "--plugin with --driver" in result.stderr
