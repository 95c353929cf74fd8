"""``cachekit stats --watch``: refreshes, per-second changes, JSON lines, and the bound on iterations."""

from __future__ import annotations

import json
from pathlib import Path

from cachekit import Cache
from cachekit._tools.cli_cache import CacheView
from cachekit._tools.cli_watch import flatten, run_watch
from tests.cli.test_cli import assert_error, cachekit, lines_of


def test_watch_json_prints_one_object_per_refresh_with_rates(tmp_path: Path, capsys: object) -> None:
    config = {"directory": str(tmp_path / "cache")}
    writer = Cache(driver="filesystem", namespace="users", config=config)
    reader = Cache(driver="filesystem", namespace="users", config=config)
    written = iter(range(100))
    clock = [0.0]

    def sleep(seconds: float) -> None:  # another process fills the cache while the view waits
        for _ in range(4):
            writer.set(f"u{next(written)}", {"n": 1})
        clock[0] += seconds

    view = CacheView(driver=reader.driver, cache=reader)
    assert run_watch(view, interval=2.0, iterations=3, as_json=True, clock=lambda: clock[0], sleep=sleep) == 0
    out = capsys.readouterr().out.splitlines()  # type: ignore[attr-defined]
    frames = [json.loads(line) for line in out]
    assert [frame["stats"]["size"] for frame in frames] == [0, 4, 8]
    assert frames[0]["per_second"] == {}
    assert frames[1]["per_second"]["size"] == 2.0  # 4 entries in 2 s
    writer.close()
    reader.close()


def test_flatten_gives_one_row_per_leaf() -> None:
    assert flatten({"a": 1, "tiers": [{"hits": 2}, {"hits": 3}], "m": {"x": None}}) == {
        "a": 1, "tiers.0.hits": 2, "tiers.1.hits": 3, "m.x": None,
    }


def test_watch_live_view_from_the_command_line(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    with Cache(driver="filesystem", namespace="users", config={"directory": str(directory)}) as users:
        users.set("u1", 1)
    config = json.dumps({"directory": str(directory)})
    result = cachekit("stats", "--driver", "filesystem", "--config", config, "--namespace", "users",
                      "--watch", "--interval", "0.05", "--iterations", "2")
    text = "\n".join(lines_of(result))
    assert "per second" in text
    assert "entries" in text
    json_lines = lines_of(cachekit("stats", "--driver", "filesystem", "--config", config, "--namespace", "users",
                                   "--watch", "--json", "--interval", "0.05", "--iterations", "2"))
    assert [json.loads(line)["stats"]["size"] for line in json_lines] == [1, 1]
    plain = json.loads(cachekit("stats", "--driver", "filesystem", "--config", config, "--json").stdout)
    assert plain["size"] == 1  # without --watch, --json is as it was


def test_watch_refuses_a_bad_interval(tmp_path: Path) -> None:
    config = json.dumps({"directory": str(tmp_path / "c")})
    result = cachekit("stats", "--driver", "filesystem", "--config", config, "--watch", "--interval", "0")
    assert_error(result, 2, "--interval must be")
