"""Regression tests for the original plugin's bugs (reference/s3db-cache-notes.md §3 and §7) not pinned elsewhere.

Where to find the others: missing invalidation (§7 item 2) in test_write_invalidation.py; over-invalidation and
the ``users``/``users_archive`` prefix (§7 items 3-4) in test_precision.py; facade bugs (§7 item 14) in
test_facade.py and test_namespaces.py; ``get`` min hits (§7 item 6) and tier TTLs (§7 item 13) in
test_plugin_options.py and test_usage_patterns.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from cachekit import CachePlugin
from cachekit.s3db import Database, Resource
from tests.plugin.conftest import S3Calls, count_lookups, object_keys
from tests.servers import free_port

pytestmark = pytest.mark.s3

EU = {"partition": "by_region", "partition_values": {"region": "eu"}}


@pytest.mark.parametrize("kind", ["memory", "partition-filesystem"])
def test_every_argument_is_part_of_the_key(
    db: Database, users: Resource, plugin_options: Callable[[str], dict[str, Any]], kind: str
) -> None:
    """§7 item 1: list/count/page keys ignored limit, offset and filters; the partition-aware driver ignored every
    parameter inside a partition (pages, query filters and get_from_partition ids shared one file)."""
    db.use_plugin(CachePlugin(**plugin_options(kind)))
    users.insert({"id": "u4", "region": "eu", "role": "admin"})
    hits_before = 0
    for round_ in range(2):  # the second round is served from the cache: each call must still get its own answer
        if round_ == 1:  # (the first round's hits: page 2's total from the count page 1 cached)
            hits_before = users.cache.stats().hits
        assert [d["id"] for d in users.list(limit=1)] == ["u1"]
        assert [d["id"] for d in users.list(limit=2)] == ["u1", "u2"]
        assert users.list_ids(offset=2) == ["u3", "u4"]
        assert [d["id"] for d in users.page(page=1, size=2, **EU)["items"]] == ["u1", "u3"]
        assert [d["id"] for d in users.page(page=2, size=2, **EU)["items"]] == ["u4"]
        assert [d["id"] for d in users.query({"role": "admin"}, **EU)] == ["u1", "u4"]
        assert [d["id"] for d in users.query({"role": "user"}, **EU)] == ["u3"]
        assert users.get_from_partition("u1", **EU)["id"] == "u1"
        assert users.get_from_partition("u3", **EU)["id"] == "u3"
    assert users.cache.stats().hits - hits_before == 9


def test_a_cache_that_is_down_never_fails_a_read_or_a_write(
    db: Database, users: Resource, caplog: pytest.LogCaptureFixture
) -> None:
    """§7 item 5: a failing cache failed the read. Now reads fail open (counted, logged) and writes go through."""
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    db.use_plugin(CachePlugin(driver="redis", config={"url": dead}, retry_attempts=1, retry_delay=0))
    with caplog.at_level(logging.WARNING, logger="cachekit"):
        assert users.count() == 3
        assert users.get("u1")["name"] == "Ada"
        users.insert({"id": "u4", "region": "eu"})
        assert users.count() == 4
    assert users.cache.stats().errors >= 3
    assert any("reading through to the source" in record.getMessage() for record in caplog.records)


def test_concurrent_misses_read_the_source_once(db: Database, users: Resource, s3_calls: S3Calls) -> None:
    """§3.1: with no single-flight, every concurrent miss called S3 and stored."""
    db.use_plugin(CachePlugin(driver="memory"))
    start = threading.Barrier(8)
    results: list[int] = []

    def read() -> None:
        start.wait()
        results.append(users.count())

    s3_calls.reset()
    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [3] * 8
    assert s3_calls.operations == ["ListObjectsV2"]


def test_clearing_one_s3_instance_never_deletes_another_instances_objects(
    db: Database, users: Resource, s3_client: Any, s3_bucket: str
) -> None:
    """§7 item 11: the S3 driver's clear could delete other instances whose key prefix starts the same, and the
    namespace was not part of the stored keys."""
    cold = CachePlugin(driver="s3", namespace="cold")
    colder = CachePlugin(driver="s3", namespace="cold-er")
    db.use_plugin(cold)
    db.use_plugin(colder)
    users.count()
    users.get("u1")
    before = object_keys(s3_client, s3_bucket, "app/plugin=cache--cold-er/")
    assert len([k for k in before if "/~gen/" not in k]) == 2  # two entries (and the group tokens reads created)
    assert cold.clear_all_cache() == 2
    # Only the generation tokens of the cleared namespace stay (they are what makes the clear O(1)).
    assert [k for k in object_keys(s3_client, s3_bucket, "app/plugin=cache--cold/") if "/~gen/" not in k] == []
    assert object_keys(s3_client, s3_bucket, "app/plugin=cache--cold-er/") == before
    assert users.count() == 3


def test_a_delete_does_not_read_the_deleted_item_through_the_cache(db: Database, users: Resource) -> None:
    """§3.4: the original's delete re-read the item through the cache to find its partitions (a stale copy could
    steer the invalidation). Here the store reports the deleted document itself; the cache is not consulted."""
    db.use_plugin(CachePlugin(driver="memory"))
    users.get("u1")
    users.count(**EU)
    with count_lookups(users) as seen:
        users.delete("u1")
    assert (seen.hits, seen.misses) == (0, 0)
    assert users.count(**EU) == 1
