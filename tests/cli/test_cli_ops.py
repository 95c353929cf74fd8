"""Operations (issue 20): ``cachekit ping`` and ``Cache.ping()``, ``keys --json``, and ``cachekit invalidate``
(a generation bump, as the application's writes do: every process stops reading what it names).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates
from tests.cli.test_cli_configurations import one_error, run
from tests.servers import free_port


class Users:
    """An application's repository: get, count and a count of a declared partition value, counting its loads."""

    name = "users"
    partitions = {"by_region": ["region"]}

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.loads = 0

    @cached(action="get")
    def get(self, id: str) -> dict[str, str]:
        self.loads += 1
        return {"id": id}

    @cached(action="count")
    def count(self, *, partition: str | None = None, partition_values: dict[str, Any] | None = None) -> int:
        self.loads += 1
        return 1

    @invalidates("update")
    def update(self, id: str) -> None:
        return None

    def read_all(self) -> None:
        self.get("u1")
        self.get("u2")
        self.count()
        self.count(partition="by_region", partition_values={"region": "eu"})
        self.count(partition="by_region", partition_values={"region": "us"})


def _current(directory: Path) -> list[str]:
    """The entries a process that starts now can read (a fresh view of the generations)."""
    with Cache(driver="filesystem", namespace="app", config={"directory": str(directory)}) as fresh:
        return sorted(fresh.keys())


def _loads_after(users: Users, expected: int) -> int:
    """Read everything again (waiting up to 2 s for the bump to be seen); the loads that took."""
    deadline = time.monotonic() + 2
    while True:
        before = users.loads
        users.read_all()
        if users.loads - before >= expected or time.monotonic() > deadline:
            return users.loads - before
        time.sleep(0.05)


@pytest.fixture
def app(tmp_path: Path) -> Any:
    directory = tmp_path / "cache"
    cache = Cache(driver="filesystem", namespace="app", config={"directory": str(directory)})
    users = Users(cache)
    users.read_all()
    assert users.loads == 5
    assert len(_current(directory)) == 5
    yield users, ("--driver", "filesystem", "--config", json.dumps({"directory": str(directory)}), "--namespace",
                  "app"), directory
    cache.close()


# -- invalidate --------------------------------------------------------------------------------------------------


def test_invalidate_an_item_as_a_write_does(capsys: pytest.CaptureFixture[str], app: Any) -> None:
    users, options, directory = app
    status, out, err = run(capsys, "invalidate", *options, "--resource", "users", "--id", "u1")
    assert (status, err) == (0, "")
    assert out.startswith("Invalidated id 'u1' (and partitions by_region) of resource 'users' in namespace 'app'")
    # u1, the aggregates and the partitions (a write whose records are unknown bumps them whole); u2 stays.
    assert [key for key in _current(directory) if "/action=get/" in key] == [users.get.cache_key("u2")]
    assert len(_current(directory)) == 1
    assert _loads_after(users, 4) == 4


def test_invalidate_one_partition_value(capsys: pytest.CaptureFixture[str], app: Any) -> None:
    users, options, directory = app
    eu = users.count.cache_key(partition="by_region", partition_values={"region": "eu"})
    status, out, _ = run(capsys, "invalidate", *options, "--resource", "users", "--partition", "by_region",
                         "--value", "region=eu")
    assert status == 0
    assert "partition 'by_region' (region=eu)" in out
    current = _current(directory)
    assert len(current) == 4
    assert eu not in current
    assert _loads_after(users, 1) == 1


def test_invalidate_the_whole_resource(capsys: pytest.CaptureFixture[str], app: Any) -> None:
    users, options, directory = app
    assert run(capsys, "invalidate", *options, "--resource", "users", "--all")[0] == 0
    assert _current(directory) == []
    assert _loads_after(users, 5) == 5


def test_invalidate_usage_mistakes_are_one_line(capsys: pytest.CaptureFixture[str], app: Any) -> None:
    _, options, _ = app
    assert "say what to invalidate" in one_error(capsys, 2, "invalidate", *options, "--resource", "users")
    assert "one of them" in one_error(capsys, 2, "invalidate", *options, "--resource", "users", "--id", "u1", "--all")
    assert "--value goes with --partition" in one_error(capsys, 2, "invalidate", *options, "--resource", "users",
                                                        "--id", "u1", "--value", "region=eu")
    assert "FIELD=VALUE" in one_error(capsys, 2, "invalidate", *options, "--resource", "users", "--partition", "p",
                                      "--value", "eu")
    assert "--resource" in one_error(capsys, 2, "invalidate", *options, "--id", "u1")
    assert "inside one process" in one_error(capsys, 2, "invalidate", "--driver", "memory", "--resource", "users",
                                             "--all")


@pytest.mark.redis
def test_invalidate_on_a_dead_backend_fails_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    config = json.dumps({"url": f"redis://:hunter2@127.0.0.1:{free_port()}/0", "connect_timeout": 0.5})
    line = one_error(capsys, 1, "invalidate", "--driver", "redis", "--config", config, "--resource", "users",
                     "--id", "u1")
    assert "nothing was invalidated" in line
    assert "hunter2" not in line


@pytest.mark.redis
def test_invalidate_reaches_another_process_through_redis(
    capsys: pytest.CaptureFixture[str], redis_url: str, redis_prefix: str
) -> None:
    config = {"url": redis_url, "key_prefix": redis_prefix}
    with Cache(driver="redis", namespace="app", config=config) as cache:
        users = Users(cache)
        users.read_all()
        status, _, _ = run(capsys, "invalidate", "--driver", "redis", "--config", json.dumps(config),
                           "--namespace", "app", "--resource", "users", "--id", "u2")
        assert status == 0
        assert _loads_after(users, 4) == 4  # u2, count, and both partitioned counts; u1 stays a hit


# -- keys --json -----------------------------------------------------------------------------------------------


def test_keys_json(capsys: pytest.CaptureFixture[str], app: Any) -> None:
    _, options, directory = app
    status, out, err = run(capsys, "keys", *options, "--resource", "users", "--json")
    listed = json.loads(out)
    assert (status, err) == (0, "")
    assert listed["keys"] == _current(directory)
    assert (listed["count"], listed["namespace"], listed["resource"], listed["driver"]) == (5, "app", "users",
                                                                                            "filesystem")
    status, out, err = run(capsys, "keys", *options, "--resource", "nobody", "--json")
    assert (status, json.loads(out)["keys"], err) == (0, [], "")  # JSON consumers get an answer, not a message


# -- ping ---------------------------------------------------------------------------------------------------------


@pytest.mark.redis
def test_ping_shows_each_tier(capsys: pytest.CaptureFixture[str], redis_url: str, redis_prefix: str) -> None:
    tiers = [{"driver": "memory"}, {"driver": "redis", "config": {"url": redis_url, "key_prefix": redis_prefix}}]
    status, out, _ = run(capsys, "ping", "--config", json.dumps({"drivers": tiers}))
    assert status == 0
    lines = out.splitlines()
    assert [line.split()[:3] for line in lines] == [["L1-memory", "memory", "ok"], ["L2-redis", "redis", "ok"]]
    status, out, _ = run(capsys, "ping", "--config", json.dumps({"drivers": tiers}), "--json")
    health = json.loads(out)
    assert health["ok"] is True
    assert [tier["name"] for tier in health["tiers"]] == ["L1-memory", "L2-redis"]
    assert all(tier["latency_ms"] >= 0 and tier["error"] is None for tier in health["tiers"])


@pytest.mark.redis
def test_ping_with_a_dead_tier(capsys: pytest.CaptureFixture[str]) -> None:
    dead = {"url": f"redis://:hunter2@127.0.0.1:{free_port()}/0", "connect_timeout": 0.5}
    tiers = [{"driver": "memory"}, {"driver": "redis", "config": dead}]
    with Cache(drivers=tiers) as cache:
        health = cache.ping()
    assert (health.ok, [tier.ok for tier in health.tiers]) == (False, [True, False])
    assert "unavailable" in (health.tiers[1].error or "")
    assert "hunter2" not in (health.tiers[1].error or "")
    status, out, _ = run(capsys, "ping", "--config", json.dumps({"drivers": tiers}))
    assert status == 1
    assert out.splitlines()[1].split()[:3] == ["L2-redis", "redis", "DOWN"]
    assert "hunter2" not in out


def test_cache_ping_of_one_driver(tmp_path: Path) -> None:
    with Cache(driver="filesystem", config={"directory": str(tmp_path)}) as cache:
        health = cache.ping()
    assert health.ok
    assert [(tier.name, tier.driver) for tier in health.tiers] == [("filesystem", "filesystem")]
    assert health.as_dict()["tiers"][0]["latency_ms"] >= 0


# -- keys --orphans -------------------------------------------------------------------------------------------


def test_keys_orphans_lists_what_writes_left_behind_with_bytes(capsys: pytest.CaptureFixture[str], app: Any) -> None:
    _, options, directory = app
    stored_before = _current(directory)
    status, out, err = run(capsys, "keys", *options, "--resource", "users", "--orphans")
    assert (status, out) == (0, "")
    assert "0 keys orphaned" in err
    assert run(capsys, "invalidate", *options, "--resource", "users", "--id", "u1")[0] == 0
    status, out, err = run(capsys, "keys", *options, "--resource", "users", "--orphans", "--json")
    listed = json.loads(out)
    orphans = [orphan["key"] for orphan in listed["orphans"]]
    assert orphans == sorted(set(stored_before) - set(_current(directory)))
    assert len(orphans) == 4
    assert all(orphan["bytes"] > 20 for orphan in listed["orphans"])  # an envelope and a payload
    assert listed["bytes"] == sum(orphan["bytes"] for orphan in listed["orphans"])
    assert "--namespace" in one_error(capsys, 2, "keys", *options[:4], "--orphans")
