"""Keys: the exact layout, stable hashing, the resolver registry and invalidation scopes."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from cachekit import Cache, Invalidation, KeySpec, register_key_resolver, stable_hash
from cachekit import keys as keys_module
from cachekit.errors import ConfigurationError, KeyResolverError, SerializationError
from cachekit.keys import format_key, get_key_resolver, partition_prefix, registered_actions
from cachekit.scopes import invalidation_scopes, read_scopes

HASH = re.compile(r"^[0-9a-f]{16}$")


def key(action: str, resource: str = "users", namespace: str = "ns", case_sensitive: bool = True, **params: Any) -> str:
    """The key of ``resource.action(**params)`` as the built-in resolvers build it."""
    spec = get_key_resolver(action)(resource, action, params)
    return format_key(namespace, spec, case_sensitive=case_sensitive)


@pytest.fixture
def custom_actions() -> Iterator[list[str]]:
    """Actions a test registers; removed afterwards so the global registry stays as the library ships it."""
    added: list[str] = []
    yield added
    for action in added:
        keys_module._RESOLVERS.pop(action, None)
        keys_module._ITEM_ACTIONS.discard(action)


# -- layout -------------------------------------------------------------------------------------------------------


def test_aggregate_key_layout() -> None:
    assert key("list", limit=10) == f"ns/resource=users/action=list/{stable_hash({'limit': 10})}"
    assert key("count") == f"ns/resource=users/action=count/{stable_hash({})}"


def test_partitioned_key_layout_puts_sorted_partition_fields_before_the_action() -> None:
    spec = KeySpec("users", "count", {}, partition="by_place", partition_values={"region": "eu", "city": "Paris"})
    assert format_key("ns", spec) == (
        f"ns/resource=users/partition=by_place/city=Paris/region=eu/action=count/"
        f"{stable_hash([{}, {'region': 'eu', 'city': 'Paris'}])}"
    )


def test_partition_segment_is_there_only_when_values_are_given() -> None:
    with_values = key("list", partition="by_region", partition_values={"region": "eu"}, limit=5)
    values_hash = stable_hash([{"limit": 5}, {"region": "eu"}])
    assert with_values == f"ns/resource=users/partition=by_region/region=eu/action=list/{values_hash}"
    assert with_values.startswith(partition_prefix("ns", "users", "by_region", {"region": "eu"}))
    assert with_values.startswith(partition_prefix("ns", "users", "by_region"))


def test_item_actions_hash_the_id_on_its_own_and_other_arguments_separately() -> None:
    id_hash = stable_hash("u1")
    assert key("get", id="u1") == f"ns/resource=users/action=get/{id_hash}"
    extra_hash = stable_hash({"fields": ["name"]})
    assert key("get", id="u1", fields=["name"]) == f"ns/resource=users/action=get/{id_hash}/{extra_hash}"
    # Without an argument called "id" there is no id: never the first argument.
    no_id = f"ns/resource=users/action=exists/-/{stable_hash({'user_id': 'u1'})}"
    assert key("exists", user_id="u1") == no_id
    # So every entry of an item starts with one prefix, whatever the other arguments were.
    assert key("get", id="u1", fields=["a"]).startswith(key("get", id="u1"))


def test_item_action_without_an_id_is_keyed_by_the_id_none() -> None:
    # get() and get(None) (None being the default) are one entry; the call goes through to the method.
    assert key("get") == key("get", id=None)
    assert key("get") != key("get", id="u1")


def test_cache_key_for_builds_the_same_keys() -> None:
    cache = Cache(namespace="ns")
    # The key is the base key, then the generations of the scopes the read depends on (none bumped yet: 0).
    base = key("count", partition="by_region", partition_values={"region": "eu"})
    assert cache.key_for("count", resource="users", partition="by_region", partition_values={"region": "eu"}) == (
        f"{base}@0.0.0"
    )
    page = key("page", page=2, size=25)
    assert cache.key_for("page", resource="users", params={"page": 2, "size": 25}) == page + "@0.0.0"
    assert cache.key_for(KeySpec("users", "get", {}, item_id="u1", has_item=True)) == key("get", id="u1") + "@0.0.0"
    cache.invalidate(Invalidation("users", ids=["u1"]))
    assert cache.key_for(KeySpec("users", "get", {}, item_id="u1", has_item=True)) == key("get", id="u1") + "@0.0.1"
    assert cache.key_for(KeySpec("users", "get", {}, item_id="u2", has_item=True)) == key("get", id="u2") + "@0.0.0"
    with pytest.raises(ConfigurationError, match="resource="):
        cache.key_for("count")


def test_every_key_ends_with_a_hash_segment() -> None:
    for some_key in (key("list"), key("get", id=1), key("count", partition="p", partition_values={"f": 1})):
        assert HASH.match(some_key.rsplit("/", 1)[1])


# -- stable hashing -------------------------------------------------------------------------------------------------


def test_stable_hash_is_16_hex_characters_and_pinned() -> None:
    # Pinned values: keys are shared between processes and deploys, so the encoding must never drift silently.
    assert stable_hash("u1") == "26f9f51b61088386"
    assert stable_hash({}) == "7369dda49f0bade6"
    assert stable_hash({"a": 1, "b": [1, "x", None, True]}) == "52cdb210cc7a1ba8"
    assert stable_hash({"when": dt.date(2024, 1, 2), "tags": {"b", "a"}, "amount": Decimal("1.50")}) == (
        "941e37c7b3ec4c0a"
    )


def test_stable_hash_is_the_same_in_other_processes_with_other_hash_seeds() -> None:
    value = {"tags": {"x", "y", "z", "w"}, "nested": {"b": frozenset({"q", "r"}), "a": ["s", 1]}, "id": "u1"}
    code = (
        "from cachekit import stable_hash\n"
        "print(stable_hash({'id': 'u1', 'nested': {'a': ['s', 1], 'b': frozenset({'r', 'q'})}, "
        "'tags': {'w', 'z', 'y', 'x'}}))"
    )
    here = stable_hash(value)
    for seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        assert out == here, f"PYTHONHASHSEED={seed}"


def test_stable_hash_ignores_dict_and_set_order() -> None:
    assert stable_hash({"a": 1, "b": {"x": 1, "y": 2}}) == stable_hash({"b": {"y": 2, "x": 1}, "a": 1})
    assert stable_hash({"c", "a", "b"}) == stable_hash({"b", "c", "a"})
    assert stable_hash({3: "x", 1: "y"}) == stable_hash({1: "y", 3: "x"})
    # Lists keep their order: [1, 2] and [2, 1] are different arguments.
    assert stable_hash([1, 2]) != stable_hash([2, 1])


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        (1, 1.0, True),
        ({"limit": 10}, {"limit": 10.0}, True),
        (True, 1, False),
        (False, 0, False),
        ("1", 1, False),
        (None, "None", False),
        (None, 0, False),
        (b"a", "a", False),
        (1.5, "1.5", False),
        (dt.date(2024, 1, 2), "2024-01-02", False),
        (uuid.UUID(int=1), str(uuid.UUID(int=1)), False),
        ({"a": 1}, {"a": 1, "b": None}, False),
        ([1], 1, False),
    ],
)
def test_stable_hash_equality(left: Any, right: Any, same: bool) -> None:
    assert (stable_hash(left) == stable_hash(right)) is same


def test_stable_hash_accepts_big_ints_and_cache_key_objects() -> None:
    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

        def __cache_key__(self) -> dict[str, int]:
            return {"x": self.x}

    assert stable_hash(2**100) != stable_hash(2**100 + 1)
    assert stable_hash(Point(1)) == stable_hash(Point(1))
    assert stable_hash(Point(1)) != stable_hash(Point(2))
    assert stable_hash(Point(1)) != stable_hash({"x": 1})


def test_stable_hash_rejects_objects_it_cannot_key() -> None:
    with pytest.raises(SerializationError, match="__cache_key__"):
        stable_hash({"who": object()})


def test_type_tags_cannot_collide_with_plain_lists() -> None:
    # Regression: tags used to be plain lists (["map", ...]), so data shaped like a tag hashed like the tagged value.
    assert stable_hash({"a": 1}) != stable_hash(["map", [["a", 1]]])
    assert stable_hash(2**70) != stable_hash(["int", str(2**70)])
    assert stable_hash({1, 2}) != stable_hash(["set", [1, 2]])
    assert stable_hash(dt.date(2024, 1, 2)) != stable_hash(["date", "2024-01-02"])
    assert stable_hash(Decimal("1.5")) != stable_hash(["Decimal", "1.5"])


def test_case_insensitive_hashing_and_keys_fold_case() -> None:
    assert stable_hash("User:1", case_sensitive=False) == stable_hash("user:1", case_sensitive=False)
    assert stable_hash({"Name": "Ada"}, case_sensitive=False) == stable_hash({"name": "ada"}, case_sensitive=False)
    assert stable_hash("User:1") != stable_hash("user:1")
    upper = key("count", "Users", case_sensitive=False, partition="By_Region", partition_values={"Region": "EU"})
    lower = key("count", "users", case_sensitive=False, partition="by_region", partition_values={"region": "eu"})
    assert upper == lower
    assert "resource=users/partition=by_region/region=eu/action=count/" in upper
    assert key("get", id="U1", case_sensitive=False) == key("get", id="u1", case_sensitive=False)
    assert key("get", id="U1") != key("get", id="u1")


def test_partition_values_with_slashes_stay_one_segment() -> None:
    plain = key("count", partition="by_region", partition_values={"region": "eu"})
    slashed = key("count", partition="by_region", partition_values={"region": "eu/west"})
    assert slashed.count("/") == plain.count("/")
    assert "region=eu%2Fwest/" in slashed
    # Clearing partition eu must not clear partition "eu/west", and the other way round.
    assert not slashed.startswith(partition_prefix("ns", "users", "by_region", {"region": "eu"}))
    assert not plain.startswith(partition_prefix("ns", "users", "by_region", {"region": "eu/west"}))


def test_resource_and_action_names_with_slashes_stay_one_segment() -> None:
    spec = KeySpec("users/admin", "count")
    assert format_key("ns", spec).startswith("ns/resource=users%2Fadmin/action=count/")


# -- every argument that changes a result is in the key ---------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "a", "b"),
    [
        ("list", {"limit": 10}, {"limit": 100}),
        ("list", {"limit": 10}, {"limit": 10, "offset": 10}),
        ("list_ids", {"offset": 0}, {"offset": 25}),
        ("page", {"page": 1, "size": 25}, {"page": 2, "size": 25}),
        ("page", {"page": 1, "size": 25}, {"page": 1, "size": 50}),
        ("query", {"filter": {"age": 30}}, {"filter": {"age": 31}}),
        ("query", {"filter": {"age": 30}}, {"filter": {"age": 30}, "limit": 1}),
        ("count", {}, {"partition": "by_region", "partition_values": {"region": "eu"}}),
        ("count", {"partition": "by_region", "partition_values": {"region": "eu"}},
         {"partition": "by_region", "partition_values": {"region": "us"}}),
        ("get_many", {"ids": ["a", "b"]}, {"ids": ["a", "c"]}),
        ("get", {"id": "u1"}, {"id": "u2"}),
        ("get", {"id": "u1"}, {"id": "u1", "fields": ["name"]}),
        ("get_from_partition", {"id": "u1", "partition": "p", "partition_values": {"r": "eu"}},
         {"id": "u1", "partition": "p", "partition_values": {"r": "us"}}),
    ],
)
def test_arguments_that_change_the_result_change_the_key(action: str, a: dict[str, Any], b: dict[str, Any]) -> None:
    assert key(action, **a) != key(action, **b)


def test_half_given_partition_arguments_stay_in_the_key() -> None:
    assert key("count", partition="by_region") != key("count")
    assert key("count", partition_values={"region": "eu"}) != key("count")


def test_actions_and_resources_are_distinct() -> None:
    assert key("list") != key("list_ids")
    assert key("list", resource="users") != key("list", resource="users_archive")
    assert key("list", namespace="a") != key("list", namespace="b")


# -- the resolver registry --------------------------------------------------------------------------------------


def test_builtin_actions_are_registered() -> None:
    for action in ("get", "get_many", "exists", "list", "list_ids", "count", "page", "query",
                   "get_from_partition", "get_all"):
        assert action in registered_actions()


def test_unknown_action_is_a_key_resolver_error_naming_the_known_ones() -> None:
    with pytest.raises(KeyResolverError, match=r"no key resolver for action 'frobnicate'.*'count'.*register"):
        get_key_resolver("frobnicate")
    with pytest.raises(LookupError):
        Cache().key_for("frobnicate", resource="users")


def test_register_custom_aggregate_action(custom_actions: list[str]) -> None:
    custom_actions.append("search_test")
    register_key_resolver("search_test")
    assert key("search_test", q="ada") == f"ns/resource=users/action=search_test/{stable_hash({'q': 'ada'})}"
    assert key("search_test", q="ada") != key("search_test", q="bob")



PARTS = {"by_region": ["region"]}


def read(
    action: str,
    resource: str = "users",
    namespace: str = "ns",
    case_sensitive: bool = True,
    partitions: Any = PARTS,
    **params: Any,
) -> frozenset[tuple[str, str]]:
    """The scopes ``resource.action(**params)`` depends on, with their namespace."""
    spec = get_key_resolver(action)(resource, action, params)
    return frozenset((namespace, s) for s in read_scopes(spec, partitions, case_sensitive=case_sensitive))


def bumps(inv: Invalidation, namespace: str = "ns", case_sensitive: bool = True) -> set[tuple[str, str]]:
    """The scopes a write bumps, with their namespace."""
    return {(namespace, s) for s in invalidation_scopes(inv, case_sensitive=case_sensitive)}


def cleared(bumped: set[tuple[str, str]], depends_on: frozenset[tuple[str, str]]) -> bool:
    """A read is invalidated by a write when the write bumps one of the scopes the read depends on."""
    return bool(bumped & depends_on)


def test_register_custom_item_action(custom_actions: list[str]) -> None:
    custom_actions.append("profile_test")
    register_key_resolver("profile_test", item=True)
    profile_key = key("profile_test", id="u1", full=True)
    assert profile_key == f"ns/resource=users/action=profile_test/{stable_hash('u1')}/{stable_hash({'full': True})}"
    # As an item action, a write to u1 clears it and a write to u2 does not.
    assert cleared(bumps(Invalidation("users", ids=["u1"])), read("profile_test", id="u1", full=True))
    assert not cleared(bumps(Invalidation("users", ids=["u2"])), read("profile_test", id="u1", full=True))


def test_register_custom_resolver_function(custom_actions: list[str]) -> None:
    def by_email(resource: str, action: str, params: Any) -> KeySpec:
        # Only the e-mail decides the result; the "trace" argument must not split the cache.
        return KeySpec(resource, action, {}, item_id=params["email"].strip().lower(), has_item=True)

    custom_actions.append("by_email_test")
    register_key_resolver("by_email_test", by_email, item=True)
    assert key("by_email_test", email=" Ada@X.org", trace=1) == key("by_email_test", email="ada@x.org", trace=2)


@pytest.mark.parametrize("bad", ["", "  ", "a/b", 5, None])
def test_register_rejects_bad_action_names(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="action must be"):
        register_key_resolver(bad)


def test_register_rejects_a_resolver_that_is_not_callable() -> None:
    with pytest.raises(ConfigurationError, match="callable"):
        register_key_resolver("never_registered", "not a function")  # type: ignore[arg-type]
    assert "never_registered" not in registered_actions()


# -- invalidation scopes ----------------------------------------------------------------------------------------


def region_read(action: str, region: Any, resource: str = "users", **params: Any) -> frozenset[tuple[str, str]]:
    return read(action, resource=resource, partition="by_region", partition_values={"region": region}, **params)


def test_a_write_clears_its_item_and_the_aggregates_but_not_other_items() -> None:
    prefixes = bumps(Invalidation("users", ids=["u1"]))
    assert cleared(prefixes, read("get", id="u1"))
    assert cleared(prefixes, read("get", id="u1", fields=["a"]))
    assert cleared(prefixes, read("exists", id="u1"))
    assert cleared(prefixes, read("list", limit=5))
    assert cleared(prefixes, read("count"))
    assert cleared(prefixes, read("page", page=3, size=10))
    assert not cleared(prefixes, read("get", id="u2"))
    assert not cleared(prefixes, read("exists", id="u2"))


def test_a_write_to_users_never_touches_users_archive_or_other_namespaces() -> None:
    for inv in (Invalidation("users", ids=["u1"]), Invalidation("users", whole=True),
                Invalidation("users", ids=["u1"], records=[{"id": "u1", "region": "eu"}], partitions=PARTS)):
        prefixes = bumps(inv)
        assert cleared(prefixes, read("list"))
        for other in (read("list", resource="users_archive"), read("get", resource="users_archive", id="u1"),
                      region_read("count", "eu", resource="users_archive"), read("list", namespace="ns2"),
                      read("list", resource="user")):
            assert not cleared(prefixes, other), (inv, other)


def test_precise_invalidation_leaves_other_partitions_alone() -> None:
    inv = Invalidation("users", ids=["u1"], records=[{"id": "u1", "region": "eu"}, {"id": "u1", "region": "eu"}],
                       partitions=PARTS, records_complete=True)
    prefixes = bumps(inv)
    assert cleared(prefixes, region_read("count", "eu"))
    assert cleared(prefixes, region_read("list", "eu", limit=10))
    assert cleared(prefixes, read("count"))  # unpartitioned aggregates always go
    assert not cleared(prefixes, region_read("count", "us"))
    assert not cleared(prefixes, region_read("list", "eu/west"))


def test_precise_invalidation_of_a_move_clears_both_partitions() -> None:
    inv = Invalidation("users", ids=["u1"], records=[{"id": "u1", "region": "eu"}, {"id": "u1", "region": "us"}],
                       partitions=PARTS, records_complete=True)
    prefixes = bumps(inv)
    assert cleared(prefixes, region_read("count", "eu"))
    assert cleared(prefixes, region_read("count", "us"))
    assert not cleared(prefixes, region_read("count", "ap"))


def test_imprecise_invalidation_clears_every_partition() -> None:
    incomplete = Invalidation("users", ids=["u1"], records=[{"id": "u1", "region": "eu"}], partitions=PARTS)
    missing_field = Invalidation("users", ids=["u1"], records=[{"id": "u1", "name": "x"}], partitions=PARTS,
                                 records_complete=True)
    for inv in (incomplete, missing_field):
        prefixes = bumps(inv)
        assert cleared(prefixes, region_read("count", "eu")), inv
        assert cleared(prefixes, region_read("count", "us")), inv


def test_partition_values_equal_in_python_or_in_spelling_share_a_scope() -> None:
    inv = Invalidation("events", ids=[1], records=[{"id": 1, "year": 2024}], partitions={"by_year": ["year"]},
                       records_complete=True)
    prefixes = bumps(inv)
    by_year = {"by_year": ["year"]}
    for spelling in ("2024", 2024, 2024.0):
        values = {"year": spelling}
        same = read("count", resource="events", partitions=by_year, partition="by_year", partition_values=values)
        assert cleared(prefixes, same), spelling
    other = read("count", resource="events", partitions=by_year, partition="by_year", partition_values={"year": 2025})
    assert not cleared(prefixes, other)


def test_reads_on_undeclared_partitions_or_some_fields_depend_on_every_write() -> None:
    places = {"by_place": ["region", "city"]}
    some_fields = read("count", partitions=places, partition="by_place", partition_values={"region": "eu"})
    undeclared = read("count", partitions=places, partition="by_other", partition_values={"region": "eu"})
    precise = Invalidation("users", ids=["u9"], records=[{"id": "u9", "region": "us", "city": "NYC"}],
                           partitions=places, records_complete=True)
    for depends_on in (some_fields, undeclared):
        assert cleared(bumps(precise), depends_on)
        assert cleared(bumps(Invalidation("users", ids=["u9"])), depends_on)


def test_whole_resource_invalidation() -> None:
    prefixes = bumps(Invalidation("users", whole=True))
    assert prefixes == {("ns", "users")}
    for some_read in (read("get", id="u9"), region_read("count", "us"), read("list")):
        assert cleared(prefixes, some_read)


def test_case_insensitive_invalidation_matches_case_folded_keys() -> None:
    prefixes = bumps(Invalidation("Users", ids=["U1"]), case_sensitive=False)
    assert cleared(prefixes, read("get", resource="users", id="u1", case_sensitive=False))
    assert cleared(prefixes, read("list", resource="USERS", case_sensitive=False))
