"""A numbered ``page()`` lists only up to the page (issue 22): same content and total as a full listing.

The expected page is computed here from the sorted ids of what was written (the documented order), for pages at
the start, middle, end and past the end, with ids whose key order differs from their id order, with and without
the cache plugin, and after writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from cachekit import CachePlugin
from cachekit.s3db import Database, Resource, ValidationError

pytestmark = pytest.mark.s3

# Key order differs from id order for these: "a" sorts after "a-b" as a key (id=a.json > id=a-b.json),
# quoted characters ("a b", "é", "a/b") sort before every unreserved one.
TRICKY = ["a", "a-b", "a.b", "a.json", "a-", "a b", "a/b", "b", "é", "~", "Z", "0", "a_b", "ab", "a.c-d", "a-c"]
PLAIN = [f"d{i:03d}" for i in range(60)]


def _expected(ids: list[str], page: int, size: int, docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(ids)
    chunk = ordered[(page - 1) * size : page * size]
    more = page * size < len(ordered)
    return {"items": [docs[i] for i in chunk], "page": page, "size": size, "total": len(ordered),
            "next_cursor": chunk[-1] if chunk and more else None}


@pytest.fixture(params=["plain", "plugin"])
def store(request: pytest.FixtureRequest, s3_client: Any, s3_bucket: str) -> Iterator[tuple[Database, Resource]]:
    database = Database(client=s3_client, bucket=s3_bucket, prefix=f"cold-{request.param}")
    if request.param == "plugin":
        database.use_plugin(CachePlugin(driver="memory"))
    yield database, database.create_resource("things", partitions={"by_kind": ["kind"]})
    database.close()


@contextlib.contextmanager
def _things(s3_client: Any, s3_bucket: str, prefix: str, plugin: CachePlugin | None = None) -> Iterator[Resource]:
    """A resource ``things`` holding PLAIN's documents, in a database of its own under ``prefix`` (closed after),
    with ``plugin`` installed first when given."""
    database = Database(client=s3_client, bucket=s3_bucket, prefix=prefix)
    if plugin is not None:
        database.use_plugin(plugin)
    try:
        resource = database.create_resource("things")
        resource.insert_many([{"id": name} for name in PLAIN])
        yield resource
    finally:
        database.close()


def _check_pages(resource: Resource, docs: dict[str, dict[str, Any]]) -> None:
    ids = list(docs)
    for size in (1, 2, 3, 7, 25):
        last = max(1, -(-len(ids) // size))
        for page in sorted({1, 2, last // 2 or 1, last, last + 1, last + 3}):
            assert resource.page(page=page, size=size) == _expected(ids, page, size, docs), (page, size)
    for kind in ("x", "y"):
        scoped = {i: d for i, d in docs.items() if d["kind"] == kind}
        for size in (1, 4):
            for page in (1, 2, 5):
                got = resource.page(page=page, size=size, partition="by_kind", partition_values={"kind": kind})
                assert got == _expected(list(scoped), page, size, scoped), (kind, page, size)


@pytest.mark.parametrize("names", [PLAIN, TRICKY, PLAIN[:5] + TRICKY], ids=["plain", "tricky", "mixed"])
def test_pages_equal_the_sorted_ids_before_and_after_writes(store: tuple[Database, Resource], names: list[str]) -> None:
    _, resource = store
    docs = {name: {"id": name, "kind": "x" if i % 3 else "y", "n": i} for i, name in enumerate(names)}
    resource.insert_many(list(docs.values()))
    _check_pages(resource, docs)
    # writes: a new first id, a deleted middle one, a moved partition, an update
    ordered = sorted(docs)
    resource.insert({"id": "!first", "kind": "x", "n": -1})
    docs["!first"] = {"id": "!first", "kind": "x", "n": -1}
    middle = ordered[len(ordered) // 2]
    resource.delete(middle)
    del docs[middle]
    moved = ordered[0]
    resource.update(moved, {"kind": "y" if docs[moved]["kind"] == "x" else "x"})
    docs[moved] = resource.get(moved)
    _check_pages(resource, docs)


def test_a_page_past_the_first_thousand_ids_still_lists_them_all(store: tuple[Database, Resource]) -> None:
    _, resource = store
    docs = {name: {"id": name, "kind": "x", "n": i} for i, name in enumerate(PLAIN)}
    resource.insert_many(list(docs.values()))
    assert resource.page(page=2, size=999) == _expected(list(docs), 2, 999, docs)
    assert resource.page(page=1, size=60) == _expected(list(docs), 1, 60, docs)


def test_the_cut_listing_is_used_for_plain_ids_and_refused_for_tricky_ones(s3_client: Any, s3_bucket: str) -> None:
    with _things(s3_client, s3_bucket, "cold-proof") as resource:
        prefix, suffix = resource._scope_listing(None, None)
        listed = resource._first_ids(prefix, suffix, 25)
        assert listed == (sorted(PLAIN)[:26], False)
        resource.insert_many([{"id": "d000-x"}, {"id": "d00"}])  # d00 is a prefix of d000-x cut before "-"
        assert resource._first_ids(prefix, suffix, 1) is None or resource._first_ids(prefix, suffix, 1)[0][0] == "d00"
        assert resource._first_ids(prefix, suffix, 200) == (sorted([*PLAIN, "d000-x", "d00"]), True)


def test_with_the_plugin_the_total_is_the_cached_count(s3_client: Any, s3_bucket: str) -> None:
    plugin = CachePlugin(driver="memory")
    with _things(s3_client, s3_bucket, "cold-count", plugin) as resource:
        assert resource.page_total is not None
        assert resource.page(page=1, size=25)["total"] == 60
        hits = resource.cache.stats().hits
        assert resource.count() == 60  # the page's total filled the cached count
        assert resource.cache.stats().hits == hits + 1
        plugin.stop()
        assert resource.page_total is None
        assert resource.page(page=1, size=25)["total"] == 60


# -- page(..., total=False): the original's skipCount (issue 22, item 2) -------------------------------------------


def _without_total(expected: dict[str, Any]) -> dict[str, Any]:
    return {**expected, "total": None}


@pytest.mark.parametrize("names", [PLAIN, TRICKY], ids=["plain", "tricky"])
def test_a_page_without_total_is_the_page_with_total_none(store: tuple[Database, Resource], names: list[str]) -> None:
    _, resource = store
    docs = {name: {"id": name, "kind": "x" if i % 3 else "y", "n": i} for i, name in enumerate(names)}
    resource.insert_many(list(docs.values()))
    ids = list(docs)
    for size in (1, 7, 25):
        last = max(1, -(-len(ids) // size))
        for page in sorted({1, 2, last, last + 1}):
            got = resource.page(page=page, size=size, total=False)
            assert got == _without_total(_expected(ids, page, size, docs)), (page, size)
    scoped = {i: d for i, d in docs.items() if d["kind"] == "x"}
    got = resource.page(page=1, size=4, partition="by_kind", partition_values={"kind": "x"}, total=False)
    assert got == _without_total(_expected(list(scoped), 1, 4, scoped))
    first = resource.page(page=1, size=3, total=False)
    after = resource.page(size=3, cursor=first["next_cursor"], total=False)
    assert after == _without_total(_expected(ids, 2, 3, docs))
    assert resource.page(page=2, size=999, total=False) == _without_total(_expected(ids, 2, 999, docs))


def _requests(client: Any) -> tuple[list[tuple[str, dict[str, Any]]], Any]:
    """Record the S3 operations ``client`` sends (botocore's own event; the requests still reach moto)."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        sent.append((model.name, dict(params.get("query_string") or {})))

    client.meta.events.register("before-call.s3", record)
    return sent, record


def test_a_page_without_total_lists_one_page_and_reads_no_count(s3_client: Any, s3_bucket: str) -> None:
    with _things(s3_client, s3_bucket, "cold-skip", CachePlugin(driver="memory")) as resource:
        sent, record = _requests(s3_client)
        try:
            got = resource.page(page=1, size=25, total=False)
        finally:
            s3_client.meta.events.unregister("before-call.s3", record)
        assert [doc["id"] for doc in got["items"]] == sorted(PLAIN)[:25]
        assert got["total"] is None
        assert got["next_cursor"] == sorted(PLAIN)[24]
        listings = [params for name, params in sent if name == "ListObjectsV2"]
        assert len(listings) == 1, sent  # the cut listing only: no full listing for a total
        assert str(listings[0].get("max-keys")) == "26"
        assert sorted(name for name, _ in sent if name != "ListObjectsV2") == ["GetObject"] * 25
        misses = resource.cache.stats().misses
        assert resource.count() == 60  # the page never asked the cached count()
        assert resource.cache.stats().misses == misses + 1


def test_pages_with_and_without_total_are_two_cache_entries(s3_client: Any, s3_bucket: str) -> None:
    with _things(s3_client, s3_bucket, "cold-keys", CachePlugin(driver="memory")) as resource:
        cache = resource.cache
        assert cache.key_for("page", {"page": 1, "size": 25, "total": False}) != cache.key_for(
            "page", {"page": 1, "size": 25})
        assert cache.key_for("page", {"page": 1, "size": 25, "total": True}) == cache.key_for(
            "page", {"page": 1, "size": 25})  # the default adds nothing: existing keys stay as they were
        assert resource.page(page=1, size=25)["total"] == 60
        assert resource.page(page=1, size=25, total=False)["total"] is None
        assert resource.page(page=1, size=25)["total"] == 60
        hits = cache.stats().hits
        assert resource.page(page=1, size=25, total=True)["total"] == 60
        assert resource.page(page=1, size=25, total=False)["total"] is None
        assert cache.stats().hits == hits + 2


@pytest.mark.parametrize("invalidation", ["precise", "resource"])
def test_a_page_without_total_is_never_stale_after_a_write(
    s3_client: Any, s3_bucket: str, invalidation: str
) -> None:
    database = Database(client=s3_client, bucket=s3_bucket, prefix=f"cold-stale-{invalidation}")
    database.use_plugin(CachePlugin(driver="memory", invalidation=invalidation))
    try:
        resource = database.create_resource("things", partitions={"by_kind": ["kind"]})
        docs = {name: {"id": name, "kind": "x" if i % 2 else "y", "n": i} for i, name in enumerate(PLAIN[:10])}
        resource.insert_many(list(docs.values()))
        scope = {"partition": "by_kind", "partition_values": {"kind": "x"}}

        def check() -> None:
            for page in (1, 2):
                assert resource.page(page=page, size=3, total=False) == _without_total(
                    _expected(list(docs), page, 3, docs)), page
            scoped = {i: d for i, d in docs.items() if d["kind"] == "x"}
            assert resource.page(page=1, size=3, total=False, **scope) == _without_total(
                _expected(list(scoped), 1, 3, scoped))

        check()
        check()  # from the cache
        resource.insert({"id": "a", "kind": "x", "n": -1})  # a new first id, in the partition
        docs["a"] = {"id": "a", "kind": "x", "n": -1}
        check()
        resource.update("d001", {"n": 100})
        docs["d001"] = {**docs["d001"], "n": 100}
        check()
        resource.update("d003", {"kind": "y"})  # leaves the partition
        docs["d003"] = {**docs["d003"], "kind": "y"}
        check()
        resource.delete("d000")
        del docs["d000"]
        check()
        resource.delete_all()
        docs.clear()
        check()
    finally:
        database.close()


def test_total_must_be_a_bool(s3_client: Any, s3_bucket: str) -> None:
    database = Database(client=s3_client, bucket=s3_bucket, prefix="cold-bad")
    try:
        resource = database.create_resource("things")
        with pytest.raises(ValidationError, match="total must be True"):
            resource.page(total="no")  # type: ignore[arg-type]
    finally:
        database.close()
