"""Every write method, on every driver, then every kind of read through the cache: never the old value.

The original plugin left ``upsert``, ``patch``, ``insert_many`` and ``delete_all`` uninvalidated (notes §3.4,
§7 item 2). Here, for each driver, every write method runs in turn; before each write the cache holds every
read (a second pass is all hits), and after it every read is compared with a model of the data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cachekit import CachePlugin
from cachekit.s3db import AlreadyExists, Database, NotFound, Resource
from tests.plugin.conftest import DRIVER_KINDS, SEED, count_lookups

pytestmark = pytest.mark.s3

Docs = dict[str, dict[str, Any]]
EU = {"partition": "by_region", "partition_values": {"region": "eu"}}
US = {"partition": "by_region", "partition_values": {"region": "us"}}
ABSENT = object()  # what a read that raised NotFound "returned" (exceptions are never cached)


def _absent_on_not_found(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except NotFound:
        return ABSENT


def ordered(docs: Docs) -> list[dict[str, Any]]:
    return [docs[i] for i in sorted(docs)]


def region(docs: Docs, name: str) -> Docs:
    return {i: d for i, d in docs.items() if d.get("region") == name}


def page_of(docs: Docs, size: int) -> dict[str, Any]:
    ids = sorted(docs)
    return {
        "items": ordered(docs)[:size],
        "page": 1,
        "size": size,
        "total": len(ids),
        "next_cursor": ids[size - 1] if len(ids) > size else None,
    }


def in_partition(docs: Docs, doc_id: str, name: str) -> Any:
    doc = docs.get(doc_id)
    return doc if doc is not None and doc.get("region") == name else ABSENT


# name -> (the read through the resource, its expected value from the model): one of each key shape (item,
# aggregate, partition aggregate, partition item), run on every driver.
READS: dict[str, tuple[Callable[[Resource], Any], Callable[[Docs], Any]]] = {
    "get u1": (lambda r: _absent_on_not_found(lambda: r.get("u1")), lambda m: m.get("u1", ABSENT)),
    "exists u4": (lambda r: r.exists("u4"), lambda m: "u4" in m),
    "count": (lambda r: r.count(), len),
    "count eu": (lambda r: r.count(**EU), lambda m: len(region(m, "eu"))),
    "count us": (lambda r: r.count(**US), lambda m: len(region(m, "us"))),
    "list": (lambda r: r.list(), ordered),
    "list_ids us": (lambda r: r.list_ids(**US), lambda m: sorted(region(m, "us"))),
    "page": (lambda r: r.page(page=1, size=2), lambda m: page_of(m, 2)),
    "query admin": (
        lambda r: r.query({"role": "admin"}),
        lambda m: [d for d in ordered(m) if d.get("role") == "admin"],
    ),
    "get_from_partition u1 eu": (
        lambda r: _absent_on_not_found(lambda: r.get_from_partition("u1", **EU)),
        lambda m: in_partition(m, "u1", "eu"),
    ),
}
# The rest of the read methods and argument shapes: the invalidation logic does not depend on the driver, so
# these run on the memory driver only (to keep the matrix fast).
MORE_READS: dict[str, tuple[Callable[[Resource], Any], Callable[[Docs], Any]]] = {
    "get u2": (lambda r: _absent_on_not_found(lambda: r.get("u2")), lambda m: m.get("u2", ABSENT)),
    "exists u1": (lambda r: r.exists("u1"), lambda m: "u1" in m),
    "get_many": (lambda r: r.get_many(["u1", "u2", "u4"]), lambda m: [m[i] for i in ("u1", "u2", "u4") if i in m]),
    "list eu limit 1": (lambda r: r.list(limit=1, **EU), lambda m: ordered(region(m, "eu"))[:1]),
    "list_ids": (lambda r: r.list_ids(), sorted),
    "list_ids eu offset 1": (lambda r: r.list_ids(offset=1, **EU), lambda m: sorted(region(m, "eu"))[1:]),
    "page us": (lambda r: r.page(size=2, **US), lambda m: page_of(region(m, "us"), 2)),
    "query eu": (lambda r: r.query({}, **EU), lambda m: ordered(region(m, "eu"))),
    "get_from_partition u1 us": (
        lambda r: _absent_on_not_found(lambda: r.get_from_partition("u1", **US)),
        lambda m: in_partition(m, "u1", "us"),
    ),
    "get_all": (lambda r: r.get_all(), ordered),
}


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {**base, **changes}


# (name, the write, the same change applied to the model), run in this order on one resource: each write starts
# from a cache holding every read of the state the previous writes left.
WRITES: list[tuple[str, Callable[[Resource], Any], Callable[[Docs], Docs]]] = [
    (
        "insert",
        lambda r: r.insert({"id": "u4", "name": "Di", "region": "eu", "role": "admin"}),
        lambda m: {**m, "u4": {"id": "u4", "name": "Di", "region": "eu", "role": "admin"}},
    ),
    (
        "insert_many",
        lambda r: r.insert_many([{"id": "u5", "region": "us", "role": "admin"}, {"id": "u0", "region": "eu"}]),
        lambda m: {**m, "u5": {"id": "u5", "region": "us", "role": "admin"}, "u0": {"id": "u0", "region": "eu"}},
    ),
    (
        "update",
        lambda r: r.update("u1", {"region": "us", "name": "Ada L."}),
        lambda m: {**m, "u1": _merge(m["u1"], {"region": "us", "name": "Ada L."})},
    ),
    (
        "patch",
        lambda r: r.patch("u1", {"role": "user", "region": "eu"}),
        lambda m: {**m, "u1": _merge(m["u1"], {"role": "user", "region": "eu"})},
    ),
    (
        "replace",
        lambda r: r.replace("u1", {"name": "Ada R.", "region": "us", "role": "admin"}),
        lambda m: {**m, "u1": {"id": "u1", "name": "Ada R.", "region": "us", "role": "admin"}},
    ),
    (
        "upsert (insert)",
        lambda r: r.upsert({"id": "u6", "region": "us", "role": "admin"}),
        lambda m: {**m, "u6": {"id": "u6", "region": "us", "role": "admin"}},
    ),
    (
        "upsert (update)",
        lambda r: r.upsert({"id": "u2", "region": "eu", "role": "admin"}),
        lambda m: {**m, "u2": _merge(m["u2"], {"region": "eu", "role": "admin"})},
    ),
    ("delete", lambda r: r.delete("u1"), lambda m: {i: d for i, d in m.items() if i != "u1"}),
    (
        "delete_many",
        lambda r: r.delete_many(["u2", "u4", "no-such-id"]),
        lambda m: {i: d for i, d in m.items() if i not in ("u2", "u4")},
    ),
    ("delete_all", lambda r: r.delete_all(), lambda m: {}),
]


def read_all(resource: Resource, reads: dict[str, tuple[Callable[[Resource], Any], Any]]) -> dict[str, Any]:
    return {name: read(resource) for name, (read, _) in reads.items()}


def assert_all_cached(
    resource: Resource, reads: dict[str, tuple[Callable[[Resource], Any], Any]], first: dict[str, Any], when: str
) -> None:
    """Reading again returns ``first`` from the cache only (reads that raised NotFound are never cached)."""
    raised = sum(1 for value in first.values() if value is ABSENT)
    with count_lookups(resource) as seen:
        assert read_all(resource, reads) == first, when
    assert (seen.hits, seen.misses) == (len(reads) - raised, raised), when


@pytest.mark.parametrize("kind", DRIVER_KINDS)
def test_every_write_method_then_every_read_is_fresh(
    db: Database, users: Resource, plugin_options: Callable[[str], dict[str, Any]], kind: str
) -> None:
    db.use_plugin(CachePlugin(**plugin_options(kind)))
    reads = {**READS, **MORE_READS} if kind == "memory" else READS
    model: Docs = {doc["id"]: dict(doc) for doc in SEED}
    before = read_all(users, reads)
    assert before == {name: expected(model) for name, (_, expected) in reads.items()}

    for write, apply, change in WRITES:
        assert_all_cached(users, reads, before, f"before {write}")  # so a stale entry would be served
        apply(users)
        model = change(model)
        after = read_all(users, reads)
        stale = {
            name: {"read": after[name], "expected": expected(model)}
            for name, (_, expected) in reads.items()
            if after[name] != expected(model)
        }
        assert stale == {}, f"{kind}: stale reads after {write}"
        assert after != before, f"{write} changed nothing the reads see"
        before = after
    assert users.count() == 0


def test_a_write_that_fails_halfway_still_invalidates_what_it_stored(db: Database, users: Resource) -> None:
    """``insert_many`` is not atomic: when one id is taken the others are stored, and their entries cleared."""
    db.use_plugin(CachePlugin(driver="memory"))
    assert users.count() == 3
    assert users.exists("u9") is False
    with pytest.raises(AlreadyExists):
        users.insert_many([{"id": "u9", "region": "eu"}, {"id": "u1", "region": "eu"}])
    assert users.count() == 4
    assert users.exists("u9") is True
    assert users.get("u1")["name"] == "Ada"  # the refused insert changed nothing
