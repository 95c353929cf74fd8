"""The CLI opens every configuration the Python API opens (issue 20, defects 1, 2 and 6).

Multi-tier caches (``drivers=[...]`` in JSON and TOML, as ``Cache(drivers=[...])`` takes them), partition-scoped
entries found by their key layout (the CLI cannot know the partitions an application declared), and
contradictions (``driver=`` next to ``drivers=``) refused instead of silently ignored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache, CachePlugin, cached, invalidates
from cachekit._tools.cli import main
from cachekit.errors import ConfigurationError


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``cachekit ARGS`` in this process: (status, stdout, stderr)."""
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def one_error(capsys: pytest.CaptureFixture[str], status: int, *args: str) -> str:
    """The command failed with ``status`` and exactly one ``cachekit: error:`` line."""
    code, out, err = run(capsys, *args)
    assert (code, out) == (status, ""), (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cachekit: error: ")
    return lines[0]


def fill(cache: Cache) -> list[str]:
    """An application's reads: one user, a count, and a count of a declared partition value."""

    class Users:
        name = "users"
        partitions = {"by_region": ["region"]}

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get")
        def get(self, id: str) -> dict[str, str]:
            return {"id": id}

        @cached(action="count")
        def count(self, *, partition: str | None = None, partition_values: dict[str, Any] | None = None) -> int:
            return 1

        @invalidates("update")
        def update(self, id: str) -> None:
            return None

    users = Users()
    users.get("u1")
    users.count()
    users.count(partition="by_region", partition_values={"region": "eu"})
    keys = sorted(cache.keys())
    assert len(keys) == 3
    return keys


# -- defect 1: multi-tier from the command line -------------------------------------------------------------


@pytest.mark.redis
def test_keys_of_a_tiered_cache_from_inline_json(
    capsys: pytest.CaptureFixture[str], redis_url: str, redis_prefix: str
) -> None:
    tiers = [{"driver": "memory"}, {"driver": "redis", "config": {"url": redis_url, "key_prefix": redis_prefix}}]
    with Cache(drivers=tiers, namespace="app") as app:
        keys = fill(app)
    config = json.dumps({"drivers": tiers})
    for args in (["--config", config], ["--driver", "tiered", "--config", config]):
        status, out, err = run(capsys, "keys", *args, "--namespace", "app")
        assert (status, out.splitlines(), err) == (0, keys, "")
    status, out, _ = run(capsys, "stats", "--config", config, "--namespace", "app", "--json")
    stats = json.loads(out)
    assert (status, stats["driver"], stats["keys_under_prefix"]) == (0, "tiered", 3)
    assert [tier["name"] for tier in stats["tiers"]] == ["L1-memory", "L2-redis"]


def test_keys_of_a_tiered_cache_from_a_toml_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tiers = [{"driver": "memory", "ttl": 60}, {"driver": "filesystem", "config": {"directory": str(tmp_path / "c")}}]
    with Cache(drivers=tiers, namespace="app") as app:
        keys = fill(app)
    toml = tmp_path / "cache.toml"
    toml.write_text(
        'strategy = "write-through"\n\n[[drivers]]\ndriver = "memory"\nttl = 60\n\n[[drivers]]\ndriver = "filesystem"\n'
        f"config = {{ directory = {json.dumps(str(tmp_path / 'c'))} }}\n",
        encoding="utf-8",
    )
    status, out, err = run(capsys, "keys", "--config", str(toml), "--namespace", "app")
    assert (status, out.splitlines(), err) == (0, keys, "")


def test_tiered_without_tiers_says_how_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error(capsys, 2, "keys", "--driver", "tiered", "--config", "{}")
    assert '--config \'{"drivers": [' in line
    assert "TieredDriver(" not in line  # command-line advice, not Python
    line = one_error(capsys, 2, "keys", "--driver", "tiered", "--config", '{"tiers": [{"driver": "memory"}]}')
    assert "'drivers', not 'tiers'" in line
    line = one_error(capsys, 2, "keys", "--config", '{"drivers": [{"driver": "memory", "bogus": 1}]}')
    assert "bogus" in line
    assert one_error(capsys, 2, "demo", "--quick", "--driver", "tiered").count('"drivers"') == 1


def test_a_filesystem_tier_is_looked_into_never_created(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "typo"
    config = json.dumps({"drivers": [{"driver": "memory"}, {"driver": "filesystem",
                                                           "config": {"directory": str(missing)}}]})
    assert "does not exist" in one_error(capsys, 2, "keys", "--config", config)
    assert not missing.exists()


# -- defect 6: contradictions are refused -------------------------------------------------------------------


def test_driver_and_drivers_together_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="contradict"):
        Cache(driver="redis", drivers=[{"driver": "memory"}])
    with pytest.raises(ConfigurationError, match="contradict"):
        CachePlugin(driver="redis", drivers=[{"driver": "memory"}])
    tiers = [{"driver": "memory"}]
    with Cache(drivers=tiers) as default, Cache(driver="tiered", drivers=tiers) as named:
        assert default.driver.name == named.driver.name == "tiered"


def test_driver_and_drivers_together_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error(capsys, 2, "keys", "--driver", "redis", "--config", '{"drivers": [{"driver": "memory"}]}')
    assert "contradict" in line


# -- defect 2: partition-scoped entries are found by their layout -----------------------------------------------


def test_keys_and_stats_list_partition_scoped_entries(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = {"directory": str(tmp_path / "cache")}
    with Cache(driver="filesystem", namespace="app", config=config) as app:
        keys = fill(app)  # the app declared by_region: its partitioned count depends on that partition's value
    fs = ("--driver", "filesystem", "--config", json.dumps(config), "--namespace", "app")
    status, out, _ = run(capsys, "keys", *fs, "--resource", "users")
    assert (status, out.splitlines()) == (0, keys)
    status, out, _ = run(capsys, "stats", *fs, "--resource", "users", "--json")
    assert json.loads(out)["keys_under_prefix"] == 3
    with Cache(driver="filesystem", namespace="app", config=config) as app:
        app.invalidate_partition("users", "by_region", {"region": "eu"})  # the partitioned entry is now an orphan
    status, out, _ = run(capsys, "keys", *fs, "--resource", "users")
    assert out.splitlines() == [key for key in keys if "partition=" not in key]


def test_clear_and_keys_agree_on_partition_scoped_entries(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = {"directory": str(tmp_path / "cache")}
    with Cache(driver="filesystem", namespace="app", config=config) as app:
        fill(app)
    fs = ("--driver", "filesystem", "--config", json.dumps(config), "--namespace", "app")
    assert run(capsys, "clear", *fs, "--resource", "users", "--yes")[1] == (
        "Removed 3 keys of resource 'users' in namespace 'app'.\n"
    )
