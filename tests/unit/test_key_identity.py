"""Keys that identify the call: ids by name, partition values by type, and reads no write would clear."""

from __future__ import annotations

from typing import Any

import pytest

from cachekit import Cache, cached, invalidates
from cachekit.errors import ConfigurationError


class People:
    name = "people"
    partitions = {"by_region": ["region"], "by_place": ["region", "city"]}

    def __init__(self) -> None:
        self.cache = Cache("memory", namespace="identity", config={"max_size": 0})
        self.rows: dict[str, dict[str, Any]] = {
            "u1": {"id": "u1", "email": "bob@x", "region": 1, "city": "a"},
            "bob@x": {"id": "bob@x", "email": "other@x", "region": "1", "city": "b"},
        }

    @cached(action="get")
    def get(self, id: str | None = None, *, email: str | None = None) -> dict[str, Any] | None:
        if id is not None:
            return self.rows.get(id)
        return next((dict(r) for r in self.rows.values() if r["email"] == email), None)

    @cached(action="count")
    def count(self, *, partition: str | None = None, partition_values: dict[str, Any] | None = None) -> int:
        return sum(all(r.get(k) == v and type(r.get(k)) is type(v) for k, v in (partition_values or {}).items())
                   for r in self.rows.values())

    @invalidates("update", before=lambda self, id, data: dict(self.rows[id]))
    def update(self, id: str, data: dict[str, Any]) -> dict[str, Any]:
        self.rows[id] = {**self.rows[id], **data}
        return dict(self.rows[id])


def test_a_keyword_lookup_does_not_share_the_key_of_an_id_lookup() -> None:
    people = People()
    assert people.get(email="bob@x")["id"] == "u1"
    assert people.get("bob@x")["id"] == "bob@x"  # not the record found by e-mail
    assert people.get.cache_key(email="bob@x") != people.get.cache_key("bob@x")


def test_a_write_to_the_real_record_clears_a_lookup_by_another_argument() -> None:
    people = People()
    assert people.get(email="bob@x")["city"] == "a"
    people.update("u1", {"city": "z"})
    assert people.get(email="bob@x")["city"] == "z"


def test_partition_values_of_different_types_are_different_entries() -> None:
    people = People()
    one = {"partition": "by_region", "partition_values": {"region": 1}}
    text = {"partition": "by_region", "partition_values": {"region": "1"}}
    assert people.count(**one) == 1
    assert people.count(**text) == 1
    assert people.count.cache_key(**one) != people.count.cache_key(**text)


@pytest.mark.parametrize("spelling", [1.0, True, 1])
def test_a_write_under_an_equal_value_clears_reads_made_with_another_spelling(spelling: Any) -> None:
    people = People()
    read = {"partition": "by_region", "partition_values": {"region": 1}}
    assert people.count(**read) == 1
    people.rows["u9"] = {"id": "u9", "email": "n@x", "region": 1, "city": "c"}
    people.update("u9", {"region": spelling})  # records say region=spelling
    assert people.count(**read) == (2 if type(spelling) is int else 1)


def test_reads_on_part_of_a_partition_or_an_undeclared_one_are_cleared_by_writes() -> None:
    people = People()
    some_fields = {"partition": "by_place", "partition_values": {"region": 1}}
    undeclared = {"partition": "by_nothing", "partition_values": {"region": 1}}
    assert people.count(**some_fields) == 1
    assert people.count(**undeclared) == 1
    people.update("bob@x", {"region": 1})  # into region 1, from another partition value
    assert people.count(**some_fields) == 2
    assert people.count(**undeclared) == 2


def test_id_param_names_the_parameter_that_holds_the_id() -> None:
    class ByEmail:
        name = "accounts"

        def __init__(self) -> None:
            self.cache = Cache("memory", namespace="identity")
            self.rows = {"a@x": 1}

        @cached(action="get", id_param="email")
        def get(self, email: str) -> int:
            return self.rows[email]

        @invalidates("update")
        def update(self, id: str, value: int) -> None:
            self.rows[id] = value

    accounts = ByEmail()
    assert accounts.get("a@x") == 1
    accounts.update("a@x", 2)
    assert accounts.get("a@x") == 2
    assert accounts.get.cache_key("a@x") != accounts.get.cache_key(email="b@x")


def test_an_item_read_without_an_id_parameter_is_refused_at_decoration() -> None:
    with pytest.raises(ConfigurationError, match=r"no parameter named 'id'.*id_param"):

        @cached(action="get", namespace=Cache("memory"))
        def get(user_id: str) -> int:
            return 1

    with pytest.raises(ConfigurationError, match="one-item actions"):

        @cached(action="count", namespace=Cache("memory"), id_param="x")
        def count(x: str) -> int:
            return 1
