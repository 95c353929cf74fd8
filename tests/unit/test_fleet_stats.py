"""Fleet-wide stats (issue 20): processes publish their counters to the shared backend, ``cachekit stats --fleet``
sums them. The sums are checked against what each real process counted itself; stored records are untrusted.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache, cached
from cachekit._tools.cli import main
from cachekit.errors import CacheWarning, ConfigurationError, CorruptEntryError
from cachekit.fleet import FLEET_PREFIX, MAX_RECORD_BYTES, StatsPublisher, parse_record, read_fleet
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]

# One process: reads users by id and counts orders; it counts its own hits and misses per action from its events.
CHILD = textwrap.dedent('''
    import json, sys
    from cachekit import Cache, cached
    driver, config, ids, counts = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4])
    cache = Cache(driver=driver, namespace="fleet", config=config, publish_stats=3600)
    mine = {}
    def seen(event):
        into = mine.setdefault(event.action, [0, 0])
        into[0 if event.kind == "hit" else 1] += 1
    cache.on("hit", seen)
    cache.on("miss", seen)
    class Users:
        name = "users"
        def __init__(self): self.cache = cache
        @cached(action="get")
        def get(self, id): return {"id": id}
        @cached(action="count")
        def count(self): return 7
    users = Users()
    for round in range(3):
        for id in ids:
            users.get(id)
    for _ in range(counts):
        users.count()
    own = cache.stats()
    cache.close()   # publishes the last counts
    print(json.dumps({"stats": {"hits": own.hits, "misses": own.misses, "sets": own.sets}, "rows": mine}))
''')


def _run_children(driver: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """Two real processes with different workloads, at once; what each counted itself."""
    workloads = [("u1,u2,u3", 4), ("u3,u4", 9)]
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, driver, json.dumps(config), ids, str(counts)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        for ids, counts in workloads
    ]
    results = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    return results


def _fleet_json(capsys: pytest.CaptureFixture[str], driver: str, config: dict[str, Any], *extra: str) -> Any:
    capsys.readouterr()
    status = main(["stats", "--fleet", "--json", "--driver", driver, "--config", json.dumps(config), *extra])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return json.loads(captured.out)


def _check_sums(found: dict[str, Any], children: list[dict[str, Any]]) -> None:
    (total,) = found["namespaces"]
    assert total["namespace"] == "fleet"
    assert total["processes"] == 2
    for name in ("hits", "misses", "sets"):
        assert total[name] == sum(child["stats"][name] for child in children), name
    hits, misses = total["hits"], total["misses"]
    assert hits > 0
    assert misses > 0
    assert total["hit_rate"] == pytest.approx(hits / (hits + misses))
    rows = {(row["resource"], row["action"]): row for row in found["rows"]}
    assert set(rows) == {("users", "get"), ("users", "count")}
    for action in ("get", "count"):
        row = rows[("users", action)]
        expected_hits = sum(child["rows"][action][0] for child in children)
        expected_misses = sum(child["rows"][action][1] for child in children)
        assert (row["hits"], row["misses"], row["processes"]) == (expected_hits, expected_misses, 2), action
        assert row["hit_rate"] == pytest.approx(expected_hits / (expected_hits + expected_misses))
    assert len(found["processes"]) == 2
    assert found["invalid"] == []


def test_fleet_hit_rate_of_two_processes_on_redis_is_the_sum_of_their_counters(
    redis_url: str, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"url": redis_url, "key_prefix": redis_prefix}
    children = _run_children("redis", config)
    found = _fleet_json(capsys, "redis", config)
    _check_sums(found, children)
    # --namespace and --resource narrow it; another namespace has no process
    assert _fleet_json(capsys, "redis", config, "--namespace", "fleet")["namespaces"] == found["namespaces"]
    only_users = _fleet_json(capsys, "redis", config, "--namespace", "fleet", "--resource", "users")
    assert only_users["rows"] == found["rows"]
    assert _fleet_json(capsys, "redis", config, "--namespace", "other")["namespaces"] == []


def test_fleet_hit_rate_of_two_processes_on_a_shared_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {"directory": str(tmp_path / "cache")}
    children = _run_children("filesystem", config)
    _check_sums(_fleet_json(capsys, "filesystem", config), children)


def test_a_multi_tier_cache_publishes_to_its_shared_tier(redis_url: str, redis_prefix: str) -> None:
    tiers = [{"driver": "memory"}, {"driver": "redis", "config": {"url": redis_url, "key_prefix": redis_prefix}}]
    with Cache(drivers=tiers, namespace="tiered", publish_stats=3600) as cache:
        assert cache.stats_publisher is not None
        _first_published(cache.stats_publisher)
        cache.set("k", 1)
        cache.get("k")
        assert cache.stats_publisher.flush()
        with Cache(driver="redis", namespace="reader", config=tiers[1]["config"]) as reader:
            (total,) = read_fleet(reader.driver).namespaces()
        assert (total["namespace"], total["hits"], total["sets"]) == ("tiered", 1, 1)


def test_records_carry_a_ttl_so_dead_processes_vanish(redis_url: str, redis_prefix: str) -> None:
    import redis

    with Cache(driver="redis", namespace="ttl", publish_stats=5, config={"url": redis_url, "key_prefix": redis_prefix}
               ) as cache:
        publisher = cache.stats_publisher
        assert publisher is not None
        assert publisher.flush()
        client = redis.Redis.from_url(redis_url)
        try:
            ttl_ms = client.pttl(redis_prefix + publisher.key)
        finally:
            client.close()
        assert 0 < ttl_ms <= 15_000  # three intervals: a process that stops publishing is gone within them
        # A backend without native expiry (S3) keeps the object: the reader leaves it out once past its TTL.
        (record,) = read_fleet(cache.driver).records
        fleet = read_fleet(cache.driver, clock=lambda: record.at + 16)
        assert fleet.records == []
        assert fleet.expired == 1


def _first_published(publisher: StatsPublisher) -> None:
    """Wait (at most 10 s) for the background thread's first record, written at once."""
    deadline = time.monotonic() + 10
    while not publisher.published and time.monotonic() < deadline:
        time.sleep(0.01)
    assert publisher.published


def test_reads_never_publish(tmp_path: Path) -> None:
    """Publishing is a background flush: a thousand hits write nothing; the record changes at the next flush."""
    with Cache(driver="filesystem", namespace="quiet", publish_stats=3600,
               config={"directory": str(tmp_path)}) as cache:
        publisher = cache.stats_publisher
        assert publisher is not None
        _first_published(publisher)
        stored = cache.driver.get(publisher.key)
        cache.set("k", 1)
        for _ in range(1000):
            cache.get("k")
        assert cache.driver.get(publisher.key) == stored
        assert publisher.flush()
        (record,) = read_fleet(cache.driver).records
        assert record.totals["hits"] == 1000


def test_a_memory_cache_has_no_fleet(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(CacheWarning, match="lives in one process, so it has no fleet"):
        cache = Cache(namespace="alone", publish_stats=True)
    assert cache.stats_publisher is None
    with pytest.raises(ConfigurationError, match="has no fleet"):
        read_fleet(cache.driver)
    assert main(["stats", "--fleet", "--driver", "memory"]) == 2
    err = capsys.readouterr().err
    assert "has no fleet" in err
    assert err.count("\n") == 1


def test_fleet_refuses_prefix_rather_than_ignoring_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Cache(driver="filesystem", config={"directory": str(tmp_path)}).close()
    config = json.dumps({"directory": str(tmp_path)})
    assert main(["stats", "--fleet", "--driver", "filesystem", "--config", config, "--prefix", "app/"]) == 2
    assert "--prefix filters stored keys, and --fleet reads the counters" in capsys.readouterr().err


@pytest.mark.parametrize("value", [0, -1, float("nan"), "10", float("inf")])
def test_publish_stats_must_be_a_flag_or_seconds(value: object) -> None:
    with warnings.catch_warnings(), pytest.raises(ConfigurationError, match="publish_stats must be"):
        Cache(namespace="bad", publish_stats=value)  # type: ignore[arg-type]


def _good(namespace: str = "ns", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"v": 1, "namespace": namespace, "process": "h:1:ab", "host": "h", "pid": 1,
                              "at": 1_000.0, "ttl": 30.0, "driver": "redis",
                              "totals": {"hits": 3, "misses": 1}, "rows": [["users", "get", 3, 1, 1, 0]]}
    record.update(changes)
    return record


def _blob(record: Any) -> bytes:
    return json.dumps(record).encode()


@pytest.mark.parametrize(("blob", "reason"), [
    (b"x" * (MAX_RECORD_BYTES + 1), "over the"),
    (b"\xff\xfe", "not a JSON record"),
    (b"[" * 100_000 + b"]" * 100_000, "over the|not a JSON record"),
    (b"[" * 50_000, "not a JSON record"),
    (_blob([1, 2]), "version 1 record"),
    (_blob(_good(v=2)), "version 1 record"),
    (_blob(_good(namespace="other")), "not the one its key names"),
    (_blob(_good(totals={"hits": -1})), "totals.hits must be a whole number"),
    (_blob(_good(totals={"hits": True})), "totals.hits must be a whole number"),
    (_blob(_good(totals={"hits": 2**64})), "totals.hits must be a whole number"),
    (_blob(_good(rows=[["users", "get", 1]])), r"rows\[0\] must be"),
    (_blob(_good(rows=[["users", 5, 1, 1, 1, 1]])), "action must be a printable string"),
    (_blob(_good(rows=[["u" * 101, "get", 1, 1, 1, 1]])), "resource must be a printable string"),
    (_blob(_good(rows=[["users", "get", 1, 1, 1, 1]] * 300)), "at most 257"),
    (_blob(_good(at=float("nan"))), "finite number"),
    (_blob(_good(ttl=10**9)), "between 0 and"),
    (_blob(_good(process="a\nb")), "process must be a printable string"),
    (_blob(_good(totals=[])), "totals must be an object"),
])
def test_records_are_untrusted(blob: bytes, reason: str) -> None:
    with pytest.raises(CorruptEntryError, match=reason) as caught:
        parse_record(blob, f"{FLEET_PREFIX}ns/h:1:ab")
    assert str(caught.value).startswith("fleet stats record '~stats/ns/h:1:ab': ")


def test_refused_records_are_listed_and_the_others_summed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    config = {"directory": str(tmp_path)}
    with Cache(driver="filesystem", namespace="ns", config=config) as cache:
        cache.driver.set(f"{FLEET_PREFIX}ns/good:1:aa", _blob(_good(at=4e9, process="good:1:aa")), 60)
        cache.driver.set(f"{FLEET_PREFIX}ns/bad:2:bb", b'{"v": 1, "namespace": "ns", "totals": {"hits": -5}}', 60)
        cache.driver.set(f"{FLEET_PREFIX}ns/big:3:cc", b"0" * (MAX_RECORD_BYTES + 10), 60)
    found = _fleet_json(capsys, "filesystem", config)
    assert [total["hits"] for total in found["namespaces"]] == [3]
    assert sorted(item["key"] for item in found["invalid"]) == [f"{FLEET_PREFIX}ns/bad:2:bb",
                                                                 f"{FLEET_PREFIX}ns/big:3:cc"]
    assert main(["stats", "--fleet", "--driver", "filesystem", "--config", json.dumps(config)]) == 0
    table = capsys.readouterr().out
    assert "users" in table
    assert "75.0%" in table
    assert "2 record(s) refused" in table


def test_a_failing_backend_never_fails_a_read_while_publishing(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    caplog.set_level(logging.WARNING, logger="cachekit")
    cache = Cache(driver="redis", namespace="down", publish_stats=3600,
                  config={"url": f"redis://127.0.0.1:{port}/0", "connect_timeout": 0.5})

    class Users:
        name = "users"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get")
        def get(self, id: str) -> str:
            return id.upper()

    assert Users().get("u1") == "U1"
    publisher = cache.stats_publisher
    assert publisher is not None
    assert publisher.flush() is False
    assert any("publishing the stats of namespace 'down'" in r.getMessage() for r in caplog.records)
    cache.close()  # its last flush fails too, and says nothing more than the log line


def test_watch_shows_recent_hit_rates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cachekit._tools.cli_cache import CacheView
    from cachekit._tools.cli_fleet import run_fleet

    with Cache(driver="filesystem", namespace="live", publish_stats=3600,
               config={"directory": str(tmp_path)}) as cache:
        publisher = cache.stats_publisher
        assert publisher is not None
        _first_published(publisher)
        cache.set("k", 1)
        cache.get("k")
        cache.get("nothing")
        publisher.flush()
        steps = iter([0.0, 2.0, 4.0])

        def sleep(_: float) -> None:  # between refreshes the process serves 6 hits and 2 misses
            for _ in range(6):
                cache.get("k")
            cache.get("nothing")
            cache.get("nothing")
            publisher.flush()

        capsys.readouterr()
        assert run_fleet(CacheView(cache.driver), as_json=True, watch=True, interval=2, iterations=2,
                         clock=lambda: next(steps), sleep=sleep) == 0
        first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
        assert first["recent"] == []
        (recent,) = second["recent"]
        assert recent["recent_hit_rate"] == pytest.approx(0.75)
        assert recent["reads_per_second"] == pytest.approx(4.0)
        assert second["namespaces"][0]["hits"] == 7
        # the rich table draws too
        assert run_fleet(CacheView(cache.driver), watch=True, interval=2, iterations=1) == 0


def test_fleet_counting_alone_does_not_time_reads_and_metrics_still_do(tmp_path: Path) -> None:
    """Fleet stats count per resource/action without timing (cheaper on the hit path); metrics turned on later
    get their timed reads, and turned off again leave the fleet's counting in place."""
    prometheus_client = pytest.importorskip("prometheus_client")
    import cachekit.metrics
    from cachekit._series import AGGREGATES

    tiers = [{"driver": "memory"}, {"driver": "filesystem", "config": {"directory": str(tmp_path)}}]
    with Cache(drivers=tiers, namespace="timed", publish_stats=3600) as cache:
        cache.set("k", 1)

        def timed_gets() -> int:
            AGGREGATES.fold_all()
            return sum(t.count for labels, t in AGGREGATES.calls.items() if labels[0] == "timed" and labels[2] == "get")

        cache.get("k")
        assert timed_gets() == 0
        cachekit.metrics.enable_prometheus(prometheus_client.CollectorRegistry())
        try:
            cache.get("k")
            assert timed_gets() == 1
        finally:
            cachekit.metrics.disable()
        cache.get("k")
        assert timed_gets() == 1
        assert cache.stats_publisher is not None
        (record,) = [json.loads(cache.stats_publisher.record())]
        assert sum(row[2] for row in record["rows"]) == 3  # every hit counted, timed or not


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_publishes_its_own_record_counting_from_the_fork(tmp_path: Path) -> None:
    with Cache(driver="filesystem", namespace="forked", publish_stats=3600,
               config={"directory": str(tmp_path)}) as cache:
        publisher = cache.stats_publisher
        assert publisher is not None
        cache.set("k", 1)
        for _ in range(5):
            cache.get("k")
        assert publisher.flush()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12: fork() of a process with threads
            pid = os.fork()
        if pid == 0:  # the child: three hits of its own, published under its own identity
            code = 1
            try:
                for _ in range(3):
                    cache.get("k")
                code = 0 if publisher.flush() else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        records = {record.pid: record for record in read_fleet(cache.driver, "forked").records}
        assert set(records) == {os.getpid(), pid}
        assert records[os.getpid()].totals["hits"] == 5
        assert records[pid].totals["hits"] == 3
        assert records[pid].process != records[os.getpid()].process


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_fork_while_another_thread_reads_the_counters_does_not_hang_the_child(tmp_path: Path) -> None:
    """The publisher thread reads the counters under a lock; a fork at that moment must not leave the child's
    copy of the lock held forever (the child's own publisher reads the counters right after the fork)."""
    from cachekit._series import AGGREGATES

    with Cache(driver="filesystem", namespace="forked-locked", publish_stats=3600,
               config={"directory": str(tmp_path)}) as cache:
        publisher = cache.stats_publisher
        assert publisher is not None
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with AGGREGATES.lock:
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(5)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                os._exit(0 if publisher.record() else 1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                time.sleep(0.02)
            else:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung on the counters' lock")
            assert os.waitstatus_to_exitcode(status) == 0
        finally:
            release.set()
            holder.join(5)


def test_a_new_publisher_counts_from_its_start(tmp_path: Path) -> None:
    """The per resource/action counters are the process's: a publisher built after an earlier cache of the same
    namespace closed publishes only what came after, as its totals do."""
    config = {"directory": str(tmp_path)}
    for hits in (4, 1):
        with Cache(driver="filesystem", namespace="again", publish_stats=3600, config=config) as cache:
            get_user = cached(action="get", namespace=cache, resource="users")(lambda id: {"id": id})
            for _ in range(hits + 1):
                get_user(f"u{hits}")  # a key of its own: the directory keeps the first cache's entries
            assert cache.stats_publisher is not None
            record = json.loads(cache.stats_publisher.record())
        assert record["totals"]["hits"] == hits
        assert record["rows"] == [["users", "get", hits, 1, 1, 0]]


def test_a_process_that_exits_without_closing_publishes_its_last_counts(tmp_path: Path) -> None:
    code = textwrap.dedent(f'''
        import time
        from cachekit import Cache
        config = {{"directory": {str(tmp_path)!r}}}
        cache = Cache(driver="filesystem", namespace="job", publish_stats=3600, config=config)
        while not cache.stats_publisher.published:   # the record it writes when it starts: zeros
            time.sleep(0.01)
        cache.set("k", 1)
        for _ in range(5):
            cache.get("k")
        # exits without close(): the counts above reach the backend at exit
    ''')
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == 0, done.stderr
    with Cache(driver="filesystem", namespace="reader", config={"directory": str(tmp_path)}) as reader:
        (record,) = read_fleet(reader.driver, "job").records
    assert (record.totals["hits"], record.totals["sets"]) == (5, 1)


def test_a_flood_of_records_is_read_up_to_a_bound(tmp_path: Path) -> None:
    with Cache(driver="filesystem", namespace="flood", config={"directory": str(tmp_path)}) as cache:
        for index in range(5):
            process = f"h:{index}:aa"
            cache.driver.set(f"{FLEET_PREFIX}flood/{process}", _blob(_good("flood", at=4e9, process=process)), 60)
        fleet = read_fleet(cache.driver, "flood", max_records=3)
    assert len(fleet.records) == 3
    assert fleet.skipped == 2
    assert fleet.as_dict()["skipped"] == 2
