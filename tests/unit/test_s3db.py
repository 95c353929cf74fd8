"""cachekit.s3db against moto's S3 server over a real socket (no in-process S3 fakes)."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cachekit.s3db import (
    AlreadyExists,
    Database,
    NotFound,
    PartitionError,
    Resource,
    S3dbError,
    S3Url,
    ValidationError,
    encode_partition_value,
)
from tests.servers import MotoServer

pytestmark = pytest.mark.s3

PARTITIONS = {"by_region": ["region"], "by_region_dept": ["region", "dept"]}


def keys_in(client: Any, bucket: str, prefix: str = "") -> list[str]:
    paginator = client.get_paginator("list_objects_v2")
    return sorted(
        item["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for item in page.get("Contents", ())
    )


@pytest.fixture
def db(s3_client: Any, s3_bucket: str) -> Iterator[Database]:
    database = Database(client=s3_client, bucket=s3_bucket, prefix="app")
    yield database
    database.close()


@pytest.fixture
def users(db: Database) -> Resource:
    return db.create_resource("users", partitions=PARTITIONS)


@pytest.fixture
def people(users: Resource) -> Resource:
    """users with five documents: u1..u5 across regions and departments."""
    users.insert_many(
        [
            {"id": "u1", "name": "Ada", "region": "eu", "dept": "eng", "role": "admin"},
            {"id": "u2", "name": "Bob", "region": "us", "dept": "eng", "role": "user"},
            {"id": "u3", "name": "Cy", "region": "eu", "dept": "ops", "role": "user"},
            {"id": "u4", "name": "Di", "region": "eu", "dept": "eng", "role": "user"},
            {"id": "u5", "name": "Ed", "role": "admin"},  # in no partition
        ]
    )
    return users


def region_count(resource: Resource, region: str) -> int:
    return resource.count(partition="by_region", partition_values={"region": region})


# -- layout and insert ---------------------------------------------------------------------------------------


def test_insert_writes_the_document_and_its_index_entries(users: Resource, s3_client: Any, s3_bucket: str) -> None:
    stored = users.insert({"name": "Ada", "region": "São Paulo/SP", "dept": "eng", "id": "a/b c"})

    assert stored == {"id": "a/b c", "name": "Ada", "region": "São Paulo/SP", "dept": "eng"}
    assert next(iter(stored)) == "id"
    assert keys_in(s3_client, s3_bucket) == [
        "app/resource=users/data/id=a%2Fb%20c.json",
        "app/resource=users/partition=by_region/region=S%C3%A3o%20Paulo%2FSP/id=a%2Fb%20c",
        "app/resource=users/partition=by_region_dept/region=S%C3%A3o%20Paulo%2FSP/dept=eng/id=a%2Fb%20c",
    ]
    assert users.get("a/b c") == stored
    assert users.list_ids(partition="by_region", partition_values={"region": "São Paulo/SP"}) == ["a/b c"]


def test_insert_generates_an_id_when_none_is_given(users: Resource) -> None:
    first = users.insert({"name": "x"})
    second = users.insert({"name": "y", "id": None})

    assert isinstance(first["id"], str)
    assert len(first["id"]) == 32
    assert first["id"] != second["id"]
    assert users.get(first["id"]) == first


def test_insert_uses_the_resource_id_generator(db: Database) -> None:
    ids = iter(["k1", "k2"])
    things = db.create_resource("things", id_generator=lambda: next(ids))

    assert [things.insert({})["id"], things.insert({"a": 1})["id"]] == ["k1", "k2"]


def test_insert_of_an_existing_id_raises_already_exists(people: Resource) -> None:
    with pytest.raises(AlreadyExists, match=r"'users'.*'u1'.*upsert") as info:
        people.insert({"id": "u1", "name": "Other", "region": "us"})

    assert isinstance(info.value, ValueError)
    assert people.get("u1")["name"] == "Ada"
    assert region_count(people, "us") == 1  # the failed insert indexed nothing


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["not", "a", "dict"], "must be a dict"),
        ({"id": 7}, "ids are non-empty strings"),
        ({"id": ""}, "ids are non-empty strings"),
        ({1: "x"}, "non-string keys"),
        ({"id": "x", "when": object()}, "cannot be stored as JSON"),
        ({"id": "x", "score": float("nan")}, "cannot be stored as JSON"),
    ],
)
def test_insert_rejects_invalid_documents(users: Resource, data: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        users.insert(data)

    assert users.count() == 0


def test_insert_many_validates_everything_before_writing(users: Resource) -> None:
    with pytest.raises(ValidationError, match="repeat the ids"):
        users.insert_many([{"id": "a"}, {"id": "b"}, {"id": "a"}])
    with pytest.raises(ValidationError, match="must be a dict"):
        users.insert_many([{"id": "a"}, "b"])
    with pytest.raises(ValidationError, match="list of dicts"):
        users.insert_many({"id": "a"})

    assert users.count() == 0


def test_insert_many_stores_the_others_then_raises_already_exists(people: Resource) -> None:
    with pytest.raises(AlreadyExists, match="'u2'"):
        people.insert_many([{"id": "n1"}, {"id": "u2", "name": "dup"}, {"id": "n2"}])

    assert people.exists("n1")
    assert people.exists("n2")
    assert people.get("u2")["name"] == "Bob"


def test_insert_many_returns_documents_in_order(users: Resource) -> None:
    stored = users.insert_many([{"id": f"i{n}", "n": n} for n in range(12)])

    assert [doc["id"] for doc in stored] == [f"i{n}" for n in range(12)]
    assert users.count() == 12


# -- reads ---------------------------------------------------------------------------------------------------


def test_get_missing_raises_not_found_naming_resource_and_id(users: Resource) -> None:
    with pytest.raises(NotFound, match=r"resource 'users' has no document with id 'nope'") as info:
        users.get("nope")

    assert isinstance(info.value, LookupError)
    with pytest.raises(ValidationError):
        users.get(1)  # type: ignore[arg-type]


def test_get_many_keeps_the_order_of_ids_and_skips_missing(people: Resource) -> None:
    found = people.get_many(["u3", "missing", "u1", "u3"])

    assert [doc["id"] for doc in found] == ["u3", "u1", "u3"]
    assert people.get_many([]) == []
    with pytest.raises(ValidationError, match="list of id strings"):
        people.get_many("u1")


def test_exists(people: Resource) -> None:
    assert people.exists("u1") is True
    assert people.exists("zz") is False


def test_list_and_list_ids_are_ordered_by_id_with_limit_and_offset(people: Resource) -> None:
    people.insert({"id": "u0"})

    assert people.list_ids() == ["u0", "u1", "u2", "u3", "u4", "u5"]
    assert people.list_ids(limit=2, offset=1) == ["u1", "u2"]
    assert people.list_ids(limit=0) == []
    assert people.list_ids(offset=10) == []
    assert [doc["id"] for doc in people.list(limit=3, offset=2)] == ["u2", "u3", "u4"]
    assert [doc["name"] for doc in people.list(partition="by_region", partition_values={"region": "eu"})] == [
        "Ada",
        "Cy",
        "Di",
    ]
    assert people.list_ids(offset=1, partition="by_region_dept", partition_values={"region": "eu", "dept": "eng"}) == [
        "u4"
    ]
    assert people.get_all() == people.list()


def test_order_is_by_id_not_by_quoted_key(users: Resource) -> None:
    # "é" quotes to "%C3%A9", which S3 lists before "z"; the id order puts it after.
    users.insert_many([{"id": "é", "region": "eu"}, {"id": "z", "region": "eu"}, {"id": "a b", "region": "eu"}])

    assert users.list_ids() == ["a b", "z", "é"]
    assert users.list_ids(partition="by_region", partition_values={"region": "eu"}) == ["a b", "z", "é"]
    assert users.page(size=2, cursor="z")["items"] == [users.get("é")]


@pytest.mark.parametrize(("limit", "offset"), [(-1, 0), (None, -1), ("2", 0), (None, True)])
def test_list_rejects_bad_windows(people: Resource, limit: Any, offset: Any) -> None:
    with pytest.raises(ValidationError):
        people.list(limit=limit, offset=offset)


def test_count_per_partition(people: Resource) -> None:
    assert people.count() == 5
    assert region_count(people, "eu") == 3
    assert region_count(people, "us") == 1
    assert region_count(people, "asia") == 0
    assert people.count(partition="by_region_dept", partition_values={"region": "eu", "dept": "eng"}) == 2


def test_partition_values_are_encoded_like_keys(db: Database) -> None:
    events = db.create_resource("events", partitions={"by_year": ["year"]})
    events.insert({"id": "e1", "year": 2024})
    events.insert({"id": "e2", "year": "2024"})
    events.insert({"id": "e3", "year": True})

    assert events.list_ids(partition="by_year", partition_values={"year": 2024}) == ["e1", "e2"]
    assert events.list_ids(partition="by_year", partition_values={"year": "true"}) == ["e3"]
    assert encode_partition_value(2024) == "2024"
    assert encode_partition_value({"b": 1, "a": [1.5]}) == '{"a":[1.5],"b":1}'
    with pytest.raises(ValidationError):
        encode_partition_value(object())


def test_page_numbers_total_and_next_cursor(people: Resource) -> None:
    first = people.page(page=1, size=2)
    second = people.page(page=2, size=2)
    last = people.page(page=3, size=2)
    beyond = people.page(page=4, size=2)

    assert [doc["id"] for doc in first["items"]] == ["u1", "u2"]
    assert {k: v for k, v in first.items() if k != "items"} == {
        "page": 1,
        "size": 2,
        "total": 5,
        "next_cursor": "u2",
    }
    assert [doc["id"] for doc in second["items"]] == ["u3", "u4"]
    assert second["next_cursor"] == "u4"
    assert [doc["id"] for doc in last["items"]] == ["u5"]
    assert last["next_cursor"] is None
    assert (beyond["items"], beyond["next_cursor"], beyond["total"]) == ([], None, 5)
    assert people.page(page=1, size=5)["next_cursor"] is None


def test_page_cursor_continues_after_the_last_id(people: Resource) -> None:
    first = people.page(size=2)
    second = people.page(size=2, cursor=first["next_cursor"])

    assert [doc["id"] for doc in second["items"]] == ["u3", "u4"]
    assert second["page"] == 2
    assert second["next_cursor"] == "u4"
    people.delete("u4")  # a cursor whose document is gone still continues after it
    third = people.page(size=2, cursor="u4")
    assert [doc["id"] for doc in third["items"]] == ["u5"]
    assert third["next_cursor"] is None
    assert third["total"] == 4


def test_page_in_a_partition(people: Resource) -> None:
    result = people.page(page=1, size=2, partition="by_region", partition_values={"region": "eu"})

    assert [doc["id"] for doc in result["items"]] == ["u1", "u3"]
    assert result["total"] == 3
    rest = people.page(size=2, cursor=result["next_cursor"], partition="by_region", partition_values={"region": "eu"})
    assert [doc["id"] for doc in rest["items"]] == ["u4"]


@pytest.mark.parametrize("kwargs", [{"page": 0}, {"size": 0}, {"page": -1}, {"size": "2"}, {"cursor": 3}])
def test_page_rejects_bad_arguments(people: Resource, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        people.page(**kwargs)

    assert isinstance(info.value, ValueError)


def test_query_filters_on_equality_with_limit_offset_and_partition(people: Resource) -> None:
    assert [doc["id"] for doc in people.query({"role": "user"})] == ["u2", "u3", "u4"]
    assert [doc["id"] for doc in people.query({"role": "user", "dept": "eng"})] == ["u2", "u4"]
    assert [doc["id"] for doc in people.query({"role": "user"}, limit=1, offset=1)] == ["u3"]
    assert [
        doc["id"]
        for doc in people.query(filter={"role": "admin"}, partition="by_region", partition_values={"region": "eu"})
    ] == ["u1"]
    assert len(people.query({})) == 5
    assert people.query({"region": None}) == []  # a missing field never matches
    with pytest.raises(ValidationError, match="filter must be a dict"):
        people.query(["role"])  # type: ignore[arg-type]


def test_get_from_partition(people: Resource) -> None:
    assert people.get_from_partition("u1", "by_region", {"region": "eu"})["name"] == "Ada"
    assert (
        people.get_from_partition(
            id="u2", partition="by_region_dept", partition_values={"region": "us", "dept": "eng"}
        )["name"]
        == "Bob"
    )
    with pytest.raises(NotFound, match=r"no document 'u1' in partition 'by_region' \(region=us\)"):
        people.get_from_partition("u1", "by_region", {"region": "us"})
    with pytest.raises(NotFound):
        people.get_from_partition("u5", "by_region", {"region": "eu"})


def test_partition_errors_name_the_problem(people: Resource, db: Database) -> None:
    with pytest.raises(PartitionError, match=r"no partition 'by_city'.*'by_region', 'by_region_dept'") as info:
        people.count(partition="by_city", partition_values={"city": "x"})
    assert isinstance(info.value, ValueError)
    with pytest.raises(PartitionError, match="no value for field 'dept'"):
        people.list(partition="by_region_dept", partition_values={"region": "eu"})
    with pytest.raises(PartitionError, match=r"fields \['city'\] that partition 'by_region' of resource 'users'"):
        people.list_ids(partition="by_region", partition_values={"region": "eu", "city": "x"})
    with pytest.raises(PartitionError, match="without partition="):
        people.page(partition_values={"region": "eu"})
    with pytest.raises(PartitionError, match="needs partition_values"):
        people.query({}, partition="by_region")
    with pytest.raises(PartitionError, match="no partition"):
        people.get_from_partition("u1", "nope", {"region": "eu"})
    plain = db.create_resource("plain")
    with pytest.raises(PartitionError, match="it has none; pass partitions= to create_resource"):
        plain.count(partition="by_region", partition_values={"region": "eu"})


def test_partitions_and_partition_values_of(people: Resource) -> None:
    assert people.partitions == PARTITIONS
    people.partitions["by_region"].append("oops")  # a copy: the resource is unchanged
    assert people.partitions == PARTITIONS
    assert people.partition_values_of({"id": "x", "region": "eu", "dept": 7}) == {
        "by_region": {"region": "eu"},
        "by_region_dept": {"region": "eu", "dept": "7"},
    }
    assert people.partition_values_of({"id": "x", "region": "eu", "dept": None}) == {"by_region": {"region": "eu"}}
    assert people.partition_values_of({"id": "x"}) == {}
    assert people.name == "users"


# -- writes --------------------------------------------------------------------------------------------------


def test_update_moves_the_document_between_partitions(people: Resource, s3_client: Any, s3_bucket: str) -> None:
    assert (region_count(people, "eu"), region_count(people, "us")) == (3, 1)

    updated = people.update("u1", {"region": "us", "title": "Dr"})

    assert updated == {
        "id": "u1",
        "name": "Ada",
        "region": "us",
        "dept": "eng",
        "role": "admin",
        "title": "Dr",
    }
    assert people.get("u1") == updated
    assert (region_count(people, "eu"), region_count(people, "us")) == (2, 2)
    assert people.list_ids(partition="by_region_dept", partition_values={"region": "us", "dept": "eng"}) == [
        "u1",
        "u2",
    ]
    index = keys_in(s3_client, s3_bucket, "app/resource=users/partition=")
    assert [key for key in index if key.endswith("/id=u1")] == [
        "app/resource=users/partition=by_region/region=us/id=u1",
        "app/resource=users/partition=by_region_dept/region=us/dept=eng/id=u1",
    ]


def test_update_merges_nested_dicts_and_patch_replaces_them(users: Resource) -> None:
    users.insert({"id": "a", "address": {"city": "Paris", "zip": "75001"}, "tags": ["x"]})
    users.insert({"id": "b", "address": {"city": "Paris", "zip": "75001"}, "tags": ["x"]})

    assert users.update("a", {"address": {"city": "Lyon"}, "tags": ["y"]}) == {
        "id": "a",
        "address": {"city": "Lyon", "zip": "75001"},
        "tags": ["y"],
    }
    assert users.patch("b", {"address": {"city": "Lyon"}}) == {
        "id": "b",
        "address": {"city": "Lyon"},
        "tags": ["x"],
    }
    assert users.get("b")["address"] == {"city": "Lyon"}


def test_patch_moves_partitions_too(people: Resource) -> None:
    people.patch(id="u5", data={"region": "eu"})

    assert region_count(people, "eu") == 4
    assert people.get_from_partition("u5", "by_region", {"region": "eu"})["name"] == "Ed"


def test_replace_keeps_only_the_new_fields_and_the_id(people: Resource) -> None:
    replaced = people.replace("u1", {"name": "Ada L."})

    assert replaced == {"id": "u1", "name": "Ada L."}
    assert people.get("u1") == replaced
    assert region_count(people, "eu") == 2  # no region any more: out of every partition
    assert people.count(partition="by_region_dept", partition_values={"region": "eu", "dept": "eng"}) == 1


@pytest.mark.parametrize("method", ["update", "patch", "replace"])
def test_changing_a_missing_document_raises_not_found(users: Resource, method: str) -> None:
    with pytest.raises(NotFound, match="'ghost'"):
        getattr(users, method)("ghost", {"a": 1})

    assert users.count() == 0


@pytest.mark.parametrize("method", ["update", "patch", "replace"])
def test_ids_cannot_change(people: Resource, method: str) -> None:
    with pytest.raises(ValidationError, match="ids cannot change"):
        getattr(people, method)("u1", {"id": "u9"})

    assert getattr(people, method)("u1", {"id": "u1", "name": "Same id is fine"})["id"] == "u1"
    assert not people.exists("u9")


def test_upsert_inserts_then_merges(users: Resource) -> None:
    created = users.upsert({"id": "x", "region": "eu", "address": {"city": "Paris", "zip": "1"}})
    merged = users.upsert({"id": "x", "region": "us", "address": {"city": "Lyon"}})
    generated = users.upsert({"name": "new"})

    assert created == {"id": "x", "region": "eu", "address": {"city": "Paris", "zip": "1"}}
    assert merged == {"id": "x", "region": "us", "address": {"city": "Lyon", "zip": "1"}}
    assert users.get("x") == merged
    assert (region_count(users, "eu"), region_count(users, "us")) == (0, 1)
    assert users.get(generated["id"]) == generated


def test_delete_removes_the_document_and_its_index(people: Resource, s3_client: Any, s3_bucket: str) -> None:
    people.delete("u1")

    assert not people.exists("u1")
    assert region_count(people, "eu") == 2
    assert not [key for key in keys_in(s3_client, s3_bucket) if "id=u1" in key]
    with pytest.raises(NotFound, match="'u1'"):
        people.delete("u1")


def test_delete_many_counts_what_it_deleted(people: Resource) -> None:
    assert people.delete_many(["u1", "nope", "u2", "u3"]) == 3
    assert people.list_ids() == ["u4", "u5"]
    assert region_count(people, "eu") == 1
    assert people.delete_many([]) == 0


def test_delete_all_leaves_other_resources_alone(
    db: Database, people: Resource, s3_client: Any, s3_bucket: str
) -> None:
    archive = db.create_resource("users_archive", partitions=PARTITIONS)
    archive.insert({"id": "old", "region": "eu"})

    assert people.delete_all() == 5

    assert (people.count(), region_count(people, "eu")) == (0, 0)
    assert keys_in(s3_client, s3_bucket, "app/resource=users/") == []
    assert (archive.list_ids(), region_count(archive, "eu")) == (["old"], 1)
    assert people.delete_all() == 0


def test_documents_that_vanish_between_listing_and_reading_are_skipped(
    people: Resource, s3_client: Any, s3_bucket: str
) -> None:
    # A stale index entry (e.g. a crash between writes) must not break partition reads.
    s3_client.delete_object(Bucket=s3_bucket, Key="app/resource=users/data/id=u3.json")

    assert [doc["id"] for doc in people.list(partition="by_region", partition_values={"region": "eu"})] == [
        "u1",
        "u4",
    ]


def test_a_corrupt_document_raises_s3db_error(people: Resource, s3_client: Any, s3_bucket: str) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="app/resource=users/data/id=u1.json", Body=b"{not json")

    with pytest.raises(S3dbError, match="not valid JSON"):
        people.get("u1")


def test_concurrent_updates_of_one_id_leave_one_index_entry(people: Resource) -> None:
    regions = ["eu", "us", "asia", "latam"] * 3
    threads = [threading.Thread(target=people.update, args=("u1", {"region": region})) for region in regions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    final = people.get("u1")["region"]
    assert [
        region
        for region in ["eu", "us", "asia", "latam"]
        if "u1" in people.list_ids(partition="by_region", partition_values={"region": region})
    ] == [final]


def test_public_methods_do_not_call_each_other(people: Resource) -> None:
    # The cache plugin wraps methods on the instance; a stale wrapped `get` must not leak into `update`.
    def stale_get(id: str) -> dict[str, Any]:
        return {"id": id, "name": "stale"}

    people.get = stale_get  # type: ignore[method-assign]
    people.list = lambda *args, **kwargs: []  # type: ignore[method-assign]

    assert people.update("u1", {"title": "Dr"})["name"] == "Ada"
    assert people.upsert({"id": "u2", "title": "Mr"})["name"] == "Bob"
    assert len(people.get_all()) == 5


def test_method_signatures_match_the_key_resolvers() -> None:
    expected = {
        "insert": ["data"],
        "insert_many": ["items"],
        "get": ["id"],
        "get_many": ["ids"],
        "exists": ["id"],
        "update": ["id", "data"],
        "patch": ["id", "data"],
        "replace": ["id", "data"],
        "upsert": ["data"],
        "delete": ["id"],
        "delete_many": ["ids"],
        "delete_all": [],
        "get_all": [],
        "list": ["limit", "offset", "partition", "partition_values"],
        "list_ids": ["limit", "offset", "partition", "partition_values"],
        "count": ["partition", "partition_values"],
        "page": ["page", "size", "cursor", "partition", "partition_values", "total"],
        "query": ["filter", "limit", "offset", "partition", "partition_values"],
        "get_from_partition": ["id", "partition", "partition_values"],
    }
    for name, params in expected.items():
        signature = inspect.signature(getattr(Resource, name))
        assert list(signature.parameters)[1:] == params, name
    page = inspect.signature(Resource.page).parameters
    assert (page["page"].default, page["size"].default, page["cursor"].default) == (1, 25, None)
    assert page["total"].default is True  # left at its default it adds nothing to a page's cache key


# -- database ------------------------------------------------------------------------------------------------


def test_create_resource_validates_names_and_partitions(db: Database) -> None:
    for bad in ["", "has space", "slash/es", "dots.no", None]:
        with pytest.raises(ValidationError, match="invalid resource name"):
            db.create_resource(bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="invalid partition name"):
        db.create_resource("a", partitions={"by region": ["region"]})
    with pytest.raises(ValidationError, match="non-empty list of field names"):
        db.create_resource("a", partitions={"by_region": "region"})
    with pytest.raises(ValidationError, match="distinct non-empty strings"):
        db.create_resource("a", partitions={"by_region": ["region", "region"]})
    assert db.resources == {}


def test_create_resource_twice(db: Database) -> None:
    users = db.create_resource("users", partitions=PARTITIONS)

    with pytest.raises(AlreadyExists, match="exist_ok=True"):
        db.create_resource("users")
    assert db.create_resource("users", partitions=PARTITIONS, exist_ok=True) is users
    with pytest.raises(AlreadyExists, match="with partitions"):
        db.create_resource("users", partitions={"by_region": ["region"]}, exist_ok=True)
    assert db.resource("users") is users
    assert db.resources == {"users": users}
    assert users.database is db


def test_resource_lookup_of_an_unknown_name(db: Database) -> None:
    db.create_resource("users")

    with pytest.raises(NotFound, match=r"no resource 'orders' \(defined: 'users'\)"):
        db.resource("orders")


def test_a_second_database_sees_the_documents_of_the_first(s3_client: Any, s3_bucket: str) -> None:
    with Database(client=s3_client, bucket=s3_bucket, prefix="/shared/") as first:
        first.create_resource("users", partitions=PARTITIONS).insert({"id": "a", "region": "eu"})
        assert first.prefix == "shared"
    with Database(client=s3_client, bucket=s3_bucket, prefix="shared") as second:
        users = second.create_resource("users", partitions=PARTITIONS)
        assert users.get("a") == {"id": "a", "region": "eu"}
        assert region_count(users, "eu") == 1
    with Database(client=s3_client, bucket=s3_bucket) as other_prefix:
        assert other_prefix.create_resource("users").count() == 0


def test_no_prefix_layout(s3_client: Any, s3_bucket: str) -> None:
    with Database(client=s3_client, bucket=s3_bucket) as database:
        database.create_resource("t", partitions={"p": ["f"]}).insert({"id": "1", "f": "v"})

    assert keys_in(s3_client, s3_bucket) == ["resource=t/data/id=1.json", "resource=t/partition=p/f=v/id=1"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"client": None, "bucket": "b"}, "client is required"),
        ({"bucket": ""}, "bucket must be"),
        ({"prefix": 3}, "prefix must be"),
        ({"max_workers": 0}, "max_workers"),
    ],
)
def test_database_rejects_bad_options(s3_client: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Database(**{"client": s3_client, "bucket": "b", **options})


class RecordingPlugin:
    def __init__(self, log: list[str], fail_stop: bool = False) -> None:
        self.log = log
        self.fail_stop = fail_stop
        self.seen: list[str] = []

    def install(self, database: Database, name: str | None) -> None:
        self.log.append(f"install {name}")
        self.seen.extend(database.resources)
        database.on_resource_created(lambda resource: self.seen.append(resource.name))

    def stop(self) -> None:
        self.log.append(f"stop {id(self)}")
        if self.fail_stop:
            raise RuntimeError("stop failed")


def test_plugins_are_installed_told_about_new_resources_and_stopped(db: Database) -> None:
    log: list[str] = []
    db.create_resource("before")
    first = RecordingPlugin(log)
    second = RecordingPlugin(log, fail_stop=True)

    assert db.use_plugin(first) is first
    db.use_plugin(second, "cache_hot")
    db.create_resource("after")
    db.create_resource("after", exist_ok=True)  # not a new resource: not reported again

    assert log == ["install None", "install cache_hot"]
    assert first.seen == ["before", "after"]
    assert second.seen == ["before", "after"]
    assert db.plugins == [first, second]
    with pytest.raises(ValidationError, match="already installed"):
        db.use_plugin(first)
    with pytest.raises(RuntimeError, match="stop failed"):
        db.stop_plugins()
    assert log[2:] == [f"stop {id(second)}", f"stop {id(first)}"]  # last installed first; all stopped
    assert db.plugins == []


def test_close_stops_plugins_and_keeps_a_client_it_did_not_create(s3_client: Any, s3_bucket: str) -> None:
    log: list[str] = []
    database = Database(client=s3_client, bucket=s3_bucket)
    database.use_plugin(RecordingPlugin(log))
    users = database.create_resource("users")
    users.insert_many([{"id": "a"}, {"id": "b"}])  # starts the worker threads

    database.close()
    database.close()

    assert len(log) == 2
    assert log[1].startswith("stop")
    assert s3_client.head_bucket(Bucket=s3_bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(S3dbError, match="closed"):
        users.get_many(["a", "b"])


# -- connect -------------------------------------------------------------------------------------------------


def test_s3_url_parsing() -> None:
    url = S3Url.parse(
        "s3://AKIA%2BKEY:se%2Fcr%40et%3A1@My-Bucket/app/v1/?endpoint=http://127.0.0.1:5055&region=eu-west-1"
    )

    assert url == S3Url(
        bucket="My-Bucket",
        prefix="app/v1",
        access_key="AKIA+KEY",
        secret_key="se/cr@et:1",
        endpoint="http://127.0.0.1:5055",
        region="eu-west-1",
    )
    assert "se/cr" not in repr(url)
    assert S3Url.parse("s3://bucket") == S3Url(bucket="bucket")
    assert S3Url.parse("s3://k:s@bucket").prefix == ""


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://k:s@bucket/p", "scheme must be 's3'"),
        ("s3://k:s@/p", "needs a bucket"),
        ("s3://k:s@bucket:9000/p", "needs a bucket"),
        ("s3://justkey@bucket", "KEY:SECRET"),
        ("s3://bucket?endpoint=x&timeout=3", r"unknown parameters \['timeout'\]"),
        ("s3://bucket?region=a&region=b", "repeats"),
        (None, "must be a str"),
    ],
)
def test_s3_url_rejects_bad_urls(url: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        S3Url.parse(url)


def test_connect_creates_the_bucket_and_closes_its_client(moto_server: MotoServer, s3_client: Any) -> None:
    url = f"s3://key:se%2Fcret@cachekit-connect-eu/data?endpoint={moto_server.endpoint_url}&region=eu-west-1"

    with Database.connect(url, create_bucket=True) as database:
        assert (database.bucket, database.prefix) == ("cachekit-connect-eu", "data")
        assert database.client.meta.endpoint_url == moto_server.endpoint_url
        assert database.client.meta.region_name == "eu-west-1"
        database.create_resource("users").insert({"id": "a"})
    location = s3_client.get_bucket_location(Bucket="cachekit-connect-eu")["LocationConstraint"]
    assert location == "eu-west-1"
    assert keys_in(s3_client, "cachekit-connect-eu") == ["data/resource=users/data/id=a.json"]

    # Connecting again with create_bucket=True finds the bucket and the document.
    again = Database.connect(url, create_bucket=True)
    try:
        assert again.create_resource("users").get("a") == {"id": "a"}
    finally:
        again.close()


def test_connect_without_create_bucket_leaves_a_missing_bucket_missing(moto_server: MotoServer) -> None:
    from botocore.exceptions import ClientError

    url = f"s3://k:s@cachekit-missing-bucket?endpoint={moto_server.endpoint_url}&region=us-east-1"
    with Database.connect(url) as database, pytest.raises(ClientError, match="NoSuchBucket"):
        database.create_resource("users").insert({"id": "a"})


def test_create_bucket_in_us_east_1(s3_client: Any) -> None:
    with Database(client=s3_client, bucket="cachekit-created-use1", create_bucket=True) as database:
        database.create_resource("t").insert({"id": "a"})

    assert keys_in(s3_client, "cachekit-created-use1") == ["resource=t/data/id=a.json"]


def test_importing_cachekit_does_not_import_boto3() -> None:
    code = "import sys, cachekit; assert 'boto3' not in sys.modules and 'botocore' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
