"""FilesystemDriver and PartitionAwareFilesystemCache on real diskcache directories under tmp_path."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import diskcache
import pytest

from cachekit._types import MISSING
from cachekit.drivers import create_driver
from cachekit.drivers._fs_options import prefix_range
from cachekit.drivers.filesystem import CLEANUP_EVERY_WRITES, FilesystemDriver
from cachekit.drivers.partition_filesystem import PartitionAwareFilesystemCache
from cachekit.errors import ConfigurationError, DriverError, DriverUnavailable
from cachekit.keys import KeySpec, format_key
from tests.conftest import FakeClock

REPO = Path(__file__).resolve().parents[2]
ALL_BYTES = bytes(range(256))


@pytest.fixture(params=["filesystem", "partition"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(kind: str, directory: Path, **options: object) -> FilesystemDriver:
    cls = FilesystemDriver if kind == "filesystem" else PartitionAwareFilesystemCache
    return cls(directory=directory, **options)  # type: ignore[arg-type]


@pytest.fixture(params=["", "t:"], ids=["no-prefix", "prefix"])
def driver(kind: str, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[FilesystemDriver]:
    drv = make(kind, tmp_path / "cache", key_prefix=request.param, clock=clock)
    yield drv
    drv.close()


def raw_rows(directory: Path) -> int:
    """Rows in a diskcache directory, expired or not, read with diskcache's public API."""
    cache = diskcache.Cache(str(directory))
    try:
        return len(cache)
    finally:
        cache.close()


# -- the driver contract, on both drivers -------------------------------------------------------------------


def test_get_set_delete(driver: FilesystemDriver) -> None:
    assert driver.get("ns/resource=users/action=get/1") is MISSING
    driver.set("ns/resource=users/action=get/1", b"one")
    assert driver.get("ns/resource=users/action=get/1") == b"one"
    driver.set("ns/resource=users/action=get/1", b"uno")
    assert driver.get("ns/resource=users/action=get/1") == b"uno"
    assert driver.delete("ns/resource=users/action=get/1") is True
    assert driver.delete("ns/resource=users/action=get/1") is False
    assert driver.get("ns/resource=users/action=get/1") is MISSING


@pytest.mark.parametrize("blob", [b"", ALL_BYTES, ALL_BYTES * 4096 + b"\x00"], ids=["empty", "256", "1MB"])
def test_binary_safe_values(driver: FilesystemDriver, blob: bytes) -> None:
    driver.set("k", blob)
    assert driver.get("k") == blob
    driver.set("ns/resource=r/partition=p/f=v/action=a/h", blob)
    assert driver.get("ns/resource=r/partition=p/f=v/action=a/h") == blob


def test_ttl_follows_the_injected_clock(driver: FilesystemDriver, clock: FakeClock) -> None:
    driver.set("k", b"v", ttl=10)
    driver.set("forever", b"v")
    assert driver.get_with_expiry("k") == (b"v", clock.now + 10)
    assert driver.get_with_expiry("forever") == (b"v", None)
    clock.advance(9.9)
    assert driver.get("k") == b"v"
    assert driver.keys() == ["forever", "k"]
    clock.advance(0.1)
    assert driver.get("k") is MISSING
    assert driver.keys() == ["forever"]
    assert driver.size() == 1


def test_keys_are_listed_without_key_prefix_and_sorted(driver: FilesystemDriver) -> None:
    keys = ["b", "a/2", "a/1", "ns/resource=x/action=get/1", "ns/resource=x/partition=p/f=1/action=list/h"]
    for key in keys:
        driver.set(key, b"v")
    assert driver.keys() == sorted(keys)
    assert driver.keys("a/") == ["a/1", "a/2"]
    assert driver.keys("ns/resource=x/") == sorted(keys[3:])
    assert driver.size() == len(keys)


def test_clear_prefix_leaves_other_prefixes(driver: FilesystemDriver) -> None:
    for key in ["users/1", "users/2", "users_archive/1", "users", "orders/1"]:
        driver.set(key, b"v")
    assert driver.clear("users/") == 2
    assert driver.keys() == ["orders/1", "users", "users_archive/1"]
    assert driver.clear("") == 3
    assert driver.keys() == []


def test_clear_many_counts_overlapping_prefixes_once(driver: FilesystemDriver) -> None:
    for key in ["a/1", "a/b/1", "c/1", "d/1"]:
        driver.set(key, b"v")
    assert driver.clear_many(["a/", "a/b/", "c/", ""]) == 3
    assert driver.keys() == ["d/1"]


def test_batches(driver: FilesystemDriver, clock: FakeClock) -> None:
    items = {f"ns/resource=r/partition=p/f={i % 3}/action=get/{i}": bytes([i]) * i for i in range(10)}
    driver.set_many(items, ttl=5)
    keys = [*items, "missing"]
    assert driver.get_many(keys) == [*items.values(), MISSING]
    assert driver.delete_many([*list(items)[:4], "missing"]) == 4
    assert driver.size() == 6
    clock.advance(5)
    assert driver.get_many(list(items)) == [MISSING] * 10


def test_key_prefixes_share_a_directory_without_colliding(kind: str, tmp_path: Path, clock: FakeClock) -> None:
    with make(kind, tmp_path, key_prefix="a:", clock=clock) as a, make(kind, tmp_path, key_prefix="b:") as b:
        a.set("k", b"from a")
        b.set("k", b"from b")
        assert (a.get("k"), b.get("k")) == (b"from a", b"from b")
        assert a.clear() == 1
        assert (a.keys(), b.keys()) == ([], ["k"])


def test_entries_survive_a_restart_with_their_deadlines(kind: str, tmp_path: Path, clock: FakeClock) -> None:
    first = make(kind, tmp_path, clock=clock)
    first.set("ns/resource=users/partition=p/region=eu/action=count/h", b"eu", ttl=100)
    first.set("plain", b"forever")
    first.close()
    second = make(kind, tmp_path, clock=clock)
    try:
        assert second.keys() == ["ns/resource=users/partition=p/region=eu/action=count/h", "plain"]
        assert second.get("plain") == b"forever"
        clock.advance(100)
        assert second.get("ns/resource=users/partition=p/region=eu/action=count/h") is MISSING
    finally:
        second.close()


def test_two_processes_see_each_others_writes(kind: str, tmp_path: Path) -> None:
    module, cls = ("filesystem", "FilesystemDriver") if kind == "filesystem" else (
        "partition_filesystem", "PartitionAwareFilesystemCache"
    )
    key = "ns/resource=users/partition=by_region/region=eu/action=count/h"
    script = textwrap.dedent(
        f"""
        import sys
        from cachekit.drivers.{module} import {cls}
        with {cls}(directory=sys.argv[1]) as driver:
            print(driver.get({key!r}).decode())
            driver.set("from-child", b"hello parent")
        """
    )
    with make(kind, tmp_path) as driver:
        driver.set(key, b"hello child")
        done = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)], cwd=REPO, capture_output=True, text=True, check=True,
            timeout=60,
        )
        assert done.stdout.strip() == "hello child"
        assert driver.get("from-child") == b"hello parent"


def test_stats(driver: FilesystemDriver, tmp_path: Path, clock: FakeClock) -> None:
    driver.set("a", b"x" * 100_000)
    driver.set("b", b"y", ttl=1)
    clock.advance(1)
    stats = driver.stats()
    assert stats["driver"] == driver.name
    assert stats["entries"] == 1
    assert stats["volume_bytes"] >= 100_000
    assert stats["directory"] == str(tmp_path / "cache")
    assert (stats["max_bytes"], stats["eviction_policy"]) == (1 << 30, "lru")


def test_closed_driver_raises_driver_error(driver: FilesystemDriver) -> None:
    driver.close()
    driver.close()
    with pytest.raises(DriverError, match="closed"):
        driver.get("k")


# -- expiry housekeeping --------------------------------------------------------------------------------------


def test_cleanup_removes_expired_entries_on_a_write_cadence(tmp_path: Path, clock: FakeClock) -> None:
    with FilesystemDriver(directory=tmp_path, clock=clock) as driver:
        for i in range(10):
            driver.set(f"short/{i}", b"v", ttl=1)
        clock.advance(1)
        for i in range(50):  # reads never clean up, even of expired neighbours' prefix
            driver.get(f"other/{i}")
        assert raw_rows(tmp_path) == 10
        for i in range(CLEANUP_EVERY_WRITES - 10):
            driver.set(f"long/{i}", b"v")
        assert raw_rows(tmp_path) == CLEANUP_EVERY_WRITES - 10
        assert driver.stats()["expired_removed"] == 10


def test_cleanup_can_be_turned_off_and_run_by_hand(tmp_path: Path, clock: FakeClock) -> None:
    with FilesystemDriver(directory=tmp_path, clock=clock, enable_cleanup=False) as driver:
        driver.set_many({f"short/{i}": b"v" for i in range(5)}, ttl=1)
        clock.advance(1)
        driver.set_many({f"long/{i}": b"v" for i in range(CLEANUP_EVERY_WRITES)})
        assert raw_rows(tmp_path) == CLEANUP_EVERY_WRITES + 5
        assert driver.remove_expired() == 5
        assert raw_rows(tmp_path) == CLEANUP_EVERY_WRITES


def test_an_expired_entry_met_on_read_is_deleted(tmp_path: Path, clock: FakeClock) -> None:
    with FilesystemDriver(directory=tmp_path, clock=clock) as driver:
        driver.set("k", b"v", ttl=1)
        clock.advance(1)  # exactly at the deadline
        assert driver.get("k") is MISSING
        assert raw_rows(tmp_path) == 0


# -- prefix ranges --------------------------------------------------------------------------------------------


def test_clear_with_a_prefix_is_an_index_range_scan(tmp_path: Path) -> None:
    with FilesystemDriver(directory=tmp_path) as driver:
        driver.set_many({f"{group}/{i}": b"v" for group in "abc" for i in range(50)})
        connection = driver._root.cache._con
        statements: list[str] = []
        connection.set_trace_callback(statements.append)
        try:
            assert driver.clear("b/") == 50
        finally:
            connection.set_trace_callback(None)
        selects = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT KEY FROM CACHE")]
        assert selects
        for sql in selects:
            plan = " ".join(str(row[-1]) for row in connection.execute("EXPLAIN QUERY PLAN " + sql))
            assert "INDEX Cache_key_raw" in plan, plan
            assert "SCAN" not in plan, plan
        assert driver.keys() == [f"{group}/{i}" for group in "ac" for i in sorted(range(50), key=str)]


@pytest.mark.parametrize(
    ("prefix", "inside", "outside"),
    [
        ("a", ["a", "a\U0010ffff", "ab"], ["b", "`", ""]),
        ("a\U0010ffff", ["a\U0010ffff", "a\U0010ffffz"], ["a", "b", "a\U0010fffe"]),
        ("x\ud7ff", ["x\ud7ff", "x\ud7ffz"], ["x\ue000", "y"]),
        ("é/", ["é/", "é/ü"], ["é0", "f"]),
    ],
)
def test_prefix_range_bounds(prefix: str, inside: list[str], outside: list[str]) -> None:
    connection = sqlite3.connect(":memory:")
    try:
        connection.execute("CREATE TABLE t (key BLOB)")
        connection.executemany("INSERT INTO t VALUES (?)", [(k,) for k in inside + outside])
        lo, hi = prefix_range(prefix)
        found = {k for (k,) in connection.execute("SELECT key FROM t WHERE key >= ? AND key < ?", (lo, hi))}
    finally:
        connection.close()
    assert found == set(inside)
    assert all(k.startswith(prefix) for k in inside)


def test_prefix_range_of_the_empty_prefix_is_every_text_key() -> None:
    assert prefix_range("") == ("", b"")
    assert prefix_range("\U0010ffff") == ("\U0010ffff", b"")


# -- eviction -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "diskcache_policy", "survivors"),
    [
        ("lru", "least-recently-used", "read"),
        ("lfu", "least-frequently-used", "read"),
        ("fifo", "least-recently-stored", "unread"),
    ],
)
def test_eviction_policy_maps_onto_diskcache(
    tmp_path: Path, policy: str, diskcache_policy: str, survivors: str
) -> None:
    with FilesystemDriver(directory=tmp_path, eviction_policy=policy.upper()) as driver:
        assert driver._root.cache.eviction_policy == diskcache_policy
        driver.set_many({f"k{i:02}": b"v" for i in range(20)})
        for i in range(10):  # read the first ten
            assert driver.get(f"k{i:02}") == b"v"
    # Reopened over its limit, one write makes diskcache cull 10 entries by the policy.
    with FilesystemDriver(directory=tmp_path, eviction_policy=policy, max_bytes=1) as driver:
        driver.set("new", b"v")
        kept = set(driver.keys()) - {"new"}
    expected = range(10) if survivors == "read" else range(10, 20)
    assert kept == {f"k{i:02}" for i in expected}


def test_max_bytes_bounds_the_volume(tmp_path: Path) -> None:
    with FilesystemDriver(directory=tmp_path, max_bytes=600_000) as driver:
        for i in range(40):
            driver.set(f"k{i}", bytes(50_000))
        stats = driver.stats()
        assert stats["max_bytes"] == 600_000
        assert 0 < stats["entries"] < 40
        assert stats["volume_bytes"] <= 600_000 + 10 * 50_000


# -- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, "needs a directory"),
        ({"directory": ""}, "non-empty"),
        ({"directory": 42}, "non-empty"),
        ({"directory": "{tmp}/missing", "create_directory": False}, "create_directory=True"),
        ({"directory": "{tmp}/file"}, "not a directory"),
        ({"directory": "{tmp}", "eviction_policy": "random"}, r"\['fifo', 'lfu', 'lru'\]"),
        ({"directory": "{tmp}", "max_bytes": 0}, "max_bytes"),
        ({"directory": "{tmp}", "max_bytes": True}, "max_bytes"),
        ({"directory": "{tmp}", "max_bytes": "1GB"}, "max_bytes"),
        ({"directory": "{tmp}", "enable_cleanup": "yes"}, "enable_cleanup"),
        ({"directory": "{tmp}", "create_directory": 1}, "create_directory"),
        ({"directory": "{tmp}", "key_prefix": None}, "key_prefix"),
        ({"directory": "{tmp}", "clock": 5}, "clock"),
        ({"directory": "{tmp}", "timeout": 0}, "timeout"),
        ({"directory": "{tmp}", "ttl": 5, "bogus": 1}, r"options 'bogus', 'ttl'; accepted options: "),
        ({"directory": "{tmp}", "max_byte": 5}, r"'max_byte' \(did you mean 'max_bytes'\?\)"),
    ],
)
def test_bad_options_are_configuration_errors(
    kind: str, tmp_path: Path, options: dict[str, object], match: str
) -> None:
    (tmp_path / "file").write_text("not a directory")
    resolved = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in options.items()}
    cls = FilesystemDriver if kind == "filesystem" else PartitionAwareFilesystemCache
    with pytest.raises(ConfigurationError, match=match):
        cls(**resolved)  # type: ignore[arg-type]
    assert not (tmp_path / "missing").exists()


def test_bad_max_open_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="max_open_folders"):
        PartitionAwareFilesystemCache(directory=tmp_path, max_open_folders=0)


def test_existing_directory_without_create_directory(tmp_path: Path) -> None:
    with FilesystemDriver(directory=tmp_path, create_directory=False) as driver:
        driver.set("k", b"v")
        assert driver.get("k") == b"v"


def test_directory_is_created_with_parents(tmp_path: Path) -> None:
    with FilesystemDriver(directory=tmp_path / "a" / "b") as driver:
        driver.set("k", b"v")
    assert (tmp_path / "a" / "b" / "cache.db").is_file()


def test_lock_timeout_is_a_driver_error(tmp_path: Path) -> None:
    other = diskcache.Cache(str(tmp_path))
    try:
        with FilesystemDriver(directory=tmp_path, timeout=0.05) as driver, other.transact():
            with pytest.raises(DriverError, match="timed out") as caught:
                driver.set("k", b"v")
            assert isinstance(caught.value.__cause__, diskcache.Timeout)
    finally:
        other.close()


def test_unusable_directory_is_driver_unavailable(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    with FilesystemDriver(directory=directory) as driver:
        for path in sorted(directory.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        directory.rmdir()
        directory.write_text("a file where the cache directory was")
        with pytest.raises(DriverUnavailable) as caught:
            driver.set("big", bytes(1 << 20))  # a write checks that the database is still the one it opened
        assert isinstance(caught.value.__cause__, (OSError, sqlite3.Error))


def test_registry_names(tmp_path: Path) -> None:
    with create_driver("filesystem", directory=tmp_path / "a") as plain:
        assert type(plain) is FilesystemDriver
    with create_driver("partition-filesystem", directory=tmp_path / "b") as partitioned:
        assert type(partitioned) is PartitionAwareFilesystemCache


# -- partition folders ----------------------------------------------------------------------------------------

EU = "app/resource=users/partition=by_region/region=eu"
US = "app/resource=users/partition=by_region/region=us"


@pytest.fixture
def partitioned(tmp_path: Path, clock: FakeClock) -> Iterator[PartitionAwareFilesystemCache]:
    drv = PartitionAwareFilesystemCache(directory=tmp_path, clock=clock)
    drv.set_many(
        {
            "app/resource=users/action=count/h": b"all",
            "app/resource=users/action=get/u1": b"u1",
            f"{EU}/action=count/h": b"eu",
            f"{EU}/action=list/h": b"eu list",
            f"{US}/action=count/h": b"us",
            "app/resource=users_archive/action=count/h": b"archive",
            "other/resource=users/partition=by_region/region=eu/action=count/h": b"other ns",
            "not-a-cachekit-key": b"plain",
        }
    )
    yield drv
    drv.close()


def test_keys_are_stored_in_folders_per_resource_and_partition(
    partitioned: PartitionAwareFilesystemCache, tmp_path: Path
) -> None:
    databases = sorted(str(p.parent.relative_to(tmp_path)) for p in tmp_path.rglob("cache.db"))
    assert databases == sorted(
        ["@default", "app/resource=users", EU, US, "app/resource=users_archive",
         "other/resource=users/partition=by_region/region=eu"]
    )
    assert raw_rows(tmp_path / EU) == 2
    assert raw_rows(tmp_path / "app" / "resource=users") == 2


def test_size_and_keys_count_every_folder(partitioned: PartitionAwareFilesystemCache) -> None:
    assert partitioned.size() == 8
    assert partitioned.keys("app/resource=users/") == sorted(
        ["app/resource=users/action=count/h", "app/resource=users/action=get/u1", f"{EU}/action=count/h",
         f"{EU}/action=list/h", f"{US}/action=count/h"]
    )
    assert partitioned.keys("app/resource=users/partition=by_region/region=e") == [
        f"{EU}/action=count/h", f"{EU}/action=list/h"
    ]
    stats = partitioned.stats()
    assert (stats["entries"], stats["folders"], stats["partitions"]) == (8, 5, 3)


def test_clear_of_a_partition_prefix_leaves_other_partitions(partitioned: PartitionAwareFilesystemCache) -> None:
    assert partitioned.clear(f"{EU}/") == 2
    assert partitioned.get(f"{US}/action=count/h") == b"us"
    assert partitioned.get("app/resource=users/action=count/h") == b"all"
    assert partitioned.clear("app/resource=users/") == 3
    assert partitioned.keys() == [
        "app/resource=users_archive/action=count/h",
        "not-a-cachekit-key",
        "other/resource=users/partition=by_region/region=eu/action=count/h",
    ]


def test_clear_partition(partitioned: PartitionAwareFilesystemCache) -> None:
    assert partitioned.clear_partition("users", "by_region", {"region": "eu"}, namespace="app") == 2
    assert partitioned.get(f"{EU}/action=count/h") is MISSING
    assert partitioned.get("other/resource=users/partition=by_region/region=eu/action=count/h") == b"other ns"
    assert partitioned.get(f"{US}/action=count/h") == b"us"
    # Without a namespace: every namespace; without values: every value of the partition.
    assert partitioned.clear_partition("users", "by_region") == 2
    assert partitioned.size() == 4
    assert partitioned.clear_partition("users", "by_city") == 0


def test_partition_stats(partitioned: PartitionAwareFilesystemCache) -> None:
    stats = partitioned.partition_stats("users")
    assert sorted(stats) == sorted(
        ["app/resource=users", EU, US, "other/resource=users/partition=by_region/region=eu"]
    )
    assert stats[EU]["entries"] == 2
    assert stats[EU]["bytes"] > 0
    assert (stats[EU]["namespace"], stats[EU]["partition"], stats[EU]["partition_values"]) == (
        "app", "by_region", {"region": "eu"}
    )
    assert stats["app/resource=users"]["partition"] is None
    assert len(partitioned.partition_stats()) == 5


def test_real_cachekit_keys_route_to_partition_folders(tmp_path: Path) -> None:
    spec = KeySpec("users", "count", {}, "by_region", {"region": "São Paulo/SP", "tier": 1})
    key = format_key("app", spec)
    other = format_key("app", KeySpec("users", "count", {}, "by_region", {"region": "Lima", "tier": 1}))
    with PartitionAwareFilesystemCache(directory=tmp_path) as driver:
        driver.set(key, b"sp")
        driver.set(other, b"lima")
        assert driver.clear_partition("users", "by_region", {"region": "São Paulo/SP"}, namespace="app") == 1
        assert (driver.get(key), driver.get(other)) == (MISSING, b"lima")
        assert len(driver.partition_stats("users")) == 2


@pytest.mark.parametrize(
    "key",
    [
        "ns/resource=x/partition=p/f=../action=get",
        "ns/resource=x/partition=p/f=./action=get",
        "../resource=x/action=get",
        "./resource=x/action=get",
        "ns//resource=x/action=get",
        "ns/resource=/action=get",
        "ns/resource=x/partition=p/f=" + "v" * 300 + "/action=get",
        "ns/resource=x/partition=p/" + "/".join(f"f{i}={'v' * 150}" for i in range(10)) + "/action=get",
        "ns/resource=x/partition=p/f=a b?c*d:e|f\\g<h>i\"j%k@l/action=get",
        "ns/resource=@default/action=get",
        "@default/resource=x/action=get",
        "résumé/resource=naïve/partition=p/f=日本/action=get",
        "resource=x",
        "ns/resource=x/",
    ],
)
def test_awkward_keys_round_trip(tmp_path: Path, key: str) -> None:
    with PartitionAwareFilesystemCache(directory=tmp_path / "cache") as driver:
        driver.set(key, b"v")
        driver.set("ns/resource=x/action=get/neighbour", b"n")
        assert driver.get(key) == b"v"
        assert key in set(driver.keys())
        assert driver.clear(key) == 1 + (key == "ns/resource=x/")
        assert driver.get(key) is MISSING
    assert all(path.is_relative_to(tmp_path / "cache") for path in tmp_path.rglob("*"))


def test_few_open_folders_still_serve_every_partition(tmp_path: Path) -> None:
    with PartitionAwareFilesystemCache(directory=tmp_path, max_open_folders=2) as driver:
        keys = [f"app/resource=r/partition=p/n={i}/action=get/h" for i in range(6)]
        for key in keys:
            driver.set(key, key.encode())
        assert [driver.get(key) for key in keys] == [key.encode() for key in keys]
        assert len(driver._folders) == 2
        assert driver.size() == 6


def test_partition_folders_written_by_another_instance_are_found(tmp_path: Path) -> None:
    with PartitionAwareFilesystemCache(directory=tmp_path) as reader:
        assert reader.size() == 0
        with PartitionAwareFilesystemCache(directory=tmp_path) as writer:
            writer.set(f"{EU}/action=count/h", b"eu")
        assert reader.keys() == [f"{EU}/action=count/h"]
        assert reader.clear("app/") == 1
    assert os.path.isdir(tmp_path / EU)
