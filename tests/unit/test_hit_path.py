"""The lean hit path (issue 11): the cheap binding of methods, memo slots of dict arguments, local blobs.

Speed is measured by ``cachekit bench`` and ``shared/tools/hitpath_instr.py``; these tests hold the shortcuts to
the behaviour of the long way round: the same keys, the same invalidation, the same bound-method surface.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates
from cachekit._memo import FREEZE_LIMIT, PACKED_LIMIT, memo_key, storable
from cachekit.codecs import Codec
from cachekit.errors import CorruptEntryError


class Repo:
    name = "users"
    partitions = {"by_region": ["region"]}

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.calls: list[tuple[Any, ...]] = []

    @cached(action="get")
    def get(self, id: Any) -> dict[str, Any]:
        """Fetch one."""
        self.calls.append(("get", id))
        return {"id": id, "n": len(self.calls)}

    @cached(action="count")
    def count(self, partition: str | None = None, partition_values: dict[str, Any] | None = None) -> int:
        self.calls.append(("count", partition, dict(partition_values or {})))
        return len(self.calls)

    @cached(action="query")
    def query(self, filter: Any = None) -> int:
        self.calls.append(("query", repr(filter)))
        return len(self.calls)

    @invalidates("update")
    def update(self, id: Any, data: dict[str, Any]) -> None:
        pass


@pytest.fixture(params=["objects", "bytes"])
def repo(request: pytest.FixtureRequest) -> Repo:
    return Repo(Cache(driver="memory", namespace="hp", config={"store": request.param}))


def test_a_method_bound_through_an_instance_still_looks_like_a_bound_method(repo: Repo) -> None:
    bound = repo.get
    assert inspect.ismethod(bound)
    assert list(inspect.signature(bound).parameters) == ["id"]
    assert bound.__self__ is repo
    assert bound.__name__ == "get"
    assert bound.__doc__ == "Fetch one."
    assert bound.__wrapped__.__func__ is Repo.__dict__["get"].__wrapped__
    assert bound == repo.get
    assert hash(bound) == hash(repo.get)
    assert bound != Repo(repo.cache).get
    assert "Repo.get" in repr(bound)


def test_the_helpers_of_the_lean_binding_act_on_its_instance(repo: Repo) -> None:
    assert repo.get("u1") == {"id": "u1", "n": 1}
    assert repo.get("u1") == {"id": "u1", "n": 1}
    assert repo.get.cache_key("u1") == Repo.get.cache_key(repo, "u1")
    assert repo.get.uncached("u1") == {"id": "u1", "n": 2}
    assert repo.get.invalidate("u1") is True
    assert repo.get("u1") == {"id": "u1", "n": 3}
    assert repo.get.refresh("u1") == {"id": "u1", "n": 4}
    assert repo.get("u1") == {"id": "u1", "n": 4}
    assert repo.get("u1", skip_cache=True) == {"id": "u1", "n": 5}
    assert repo.get("u1") == {"id": "u1", "n": 4}


def test_one_true_and_one_point_oh_never_share_a_memo_slot(repo: Repo) -> None:
    slots = {memo_key(Repo.get, "users", (value,), {}) for value in (1, True, 1.0, "1")}
    assert len(slots) == 4
    repo.get(1)
    repo.get(1.0)
    # 1 and 1.0 are one key (equal numbers), True is its own: the memo never merges what keys keep apart.
    assert repo.get.cache_key(True) != repo.get.cache_key(1)
    assert type(repo.get(True)["id"]) is bool


def test_positional_and_keyword_arguments_are_different_slots() -> None:
    assert memo_key("s", "r", ("partition", "p"), {}) != memo_key("s", "r", (), {"partition": "p"})
    assert memo_key("s", "r", ({"a": 1},), {}) != memo_key("s", "r", ({"a": 1.0},), {})
    assert memo_key("s", "r", ({"a": 1},), {}) != memo_key("s", "r", ({"a": True},), {})
    assert memo_key("s", "r", ({},), {}) == memo_key("s", "r", ({},), {})
    assert memo_key("s", "r", ({"a": [1]},), {}) != memo_key("s", "r", ({"a": (1,)},), {})
    assert memo_key("s", "r", (list(range(PACKED_LIMIT)),), {}) is None  # packs to over PACKED_LIMIT bytes
    assert not storable(("s", "r", bytes(PACKED_LIMIT + 1)))
    assert storable(("s", "r", "x" * (PACKED_LIMIT + 1)))
    assert memo_key("s", "r", (tuple(range(FREEZE_LIMIT + 1)),), {}) is None  # a tuple is frozen, within limits
    assert memo_key("s", "r", ((1, 2),), {}) == memo_key("s", "r", ((1, 2),), {}) is not None
    assert memo_key("s", "r", (2**70,), {}) == memo_key("s", "r", (2**70,), {}) is not None  # past msgpack's ints
    assert memo_key("s", "r", (object(),), {}) is None


def test_a_mutated_dict_argument_never_hits_the_old_key(repo: Repo) -> None:
    values = {"region": "eu"}
    first = repo.count(partition="by_region", partition_values=values)
    assert repo.count(partition="by_region", partition_values=values) == first
    key_eu = repo.count.cache_key(partition="by_region", partition_values=values)
    values["region"] = "us"
    second = repo.count(partition="by_region", partition_values=values)
    assert second != first
    assert repo.count.cache_key(partition="by_region", partition_values=values) != key_eu
    assert repo.calls[-1] == ("count", "by_region", {"region": "us"})
    nested = {"a": {"b": [1]}}
    repo.query(nested)
    loads = len(repo.calls)
    repo.query(nested)
    assert len(repo.calls) == loads
    nested["a"]["b"].append(2)
    repo.query(nested)
    assert len(repo.calls) == loads + 1


def test_memoized_partitioned_reads_follow_their_generations(repo: Repo) -> None:
    eu = {"region": "eu"}
    before = repo.count(partition="by_region", partition_values=eu)
    assert repo.count(partition="by_region", partition_values=eu) == before
    repo.update("u1", {"id": "u1", "region": "eu"})  # precise records unknown: the partition is bumped
    after = repo.count(partition="by_region", partition_values=eu)
    assert after != before
    assert repo.count(partition="by_region", partition_values=eu) == after


def test_a_classmethod_a_function_and_a_stacked_plugin_style_wrapper_still_work() -> None:
    cache = Cache(driver="memory", namespace="hp2")

    @cached(action="get", namespace=cache, resource="things")
    def read(id: str) -> str:
        return id.upper()

    assert read("a") == "A"
    assert read("a") == "A"
    repo = Repo(cache)
    wrapped = cached(action="get", namespace=cache, resource="outer")(repo.get)  # what the plugin does
    assert list(inspect.signature(wrapped).parameters) == ["id"]
    assert wrapped("u9") == {"id": "u9", "n": 1}
    assert wrapped("u9", skip_cache=True) == {"id": "u9", "n": 2}  # passed on: the inner read is skipped too
    assert wrapped("u9") == {"id": "u9", "n": 1}


def test_only_a_plain_memory_namespace_skips_checksums() -> None:
    assert Cache(driver="memory").codec._trusted is True  # type: ignore[union-attr]
    tiered = Cache(drivers=[{"driver": "memory"}, {"driver": "memory"}])
    assert tiered.codec._trusted is False  # type: ignore[union-attr]
    signed = Codec(signing_key=b"0123456789abcdef-key")
    assert signed.trust_local_blobs() is False
    blob = bytearray(signed.encode({"a": 1}, 60))
    blob[-1] ^= 1
    with pytest.raises(CorruptEntryError):
        signed.decode(bytes(blob))


def test_a_trusting_codec_still_refuses_what_it_did_not_write() -> None:
    codec = Codec()
    assert codec.trust_local_blobs() is True
    assert codec.decode(codec.encode({"a": [1, 2]}, 60)) == {"a": [1, 2]}
    for bad in (b"", b"\xce\x02\x01", b"garbage" * 5, Codec("json").encode(1, None)):
        with pytest.raises(CorruptEntryError):
            codec.decode(bad)
    checked = Codec()
    blob = bytearray(checked.encode({"a": 1}, 60))
    blob[-1] ^= 1
    with pytest.raises(CorruptEntryError):
        checked.decode(bytes(blob))


def _keyword_function(cache: Cache, calls: list[dict[str, Any]]) -> Any:
    @cached(action="query", namespace=cache, resource="docs")
    def find(*, filter: Any = None, limit: int = 10) -> int:  # called on the wrapt path (CachedState.__call__)
        calls.append({"filter": filter, "limit": limit})
        return len(calls)

    return find


def test_a_keyword_call_packing_past_the_limit_is_never_memoized() -> None:
    cache, calls = Cache(namespace="hp-big"), []
    find = _keyword_function(cache, calls)
    big = {f"k{i}": "v" * 20 for i in range(100)}  # packs to over PACKED_LIMIT bytes
    assert find(filter=big) == find(filter=big) == 1  # still cached, by its key
    memo = find._self_state.packed_memo  # namespace and resource fixed: the state's own memo (test_memo_slots)
    assert len(memo) == len(cache._key_memo) == 0
    find(filter={"k": "v"})
    assert len(memo) == 1


def test_skip_cache_bypasses_a_memoized_call_and_false_is_the_plain_call() -> None:
    cache, calls = Cache(namespace="hp-skip"), []
    find = _keyword_function(cache, calls)
    assert find(filter={"a": 1}) == 1
    assert find(filter={"a": 1}, skip_cache=True) == 2  # read through although the plain call is memoized
    assert find(filter={"a": 1}, skip_cache=False) == 1  # the cached value, under the same key
    assert find(filter={"a": 1}) == 1
    assert all("skip_cache" not in call for call in calls)


def test_skip_cache_on_a_disabled_action_never_reaches_the_function() -> None:
    cache = Cache(namespace="hp-off", method_policies={"query": False, "get": False})
    calls: list[dict[str, Any]] = []
    find = _keyword_function(cache, calls)
    assert find(filter="x", skip_cache=True) == 1
    assert find(filter="x", skip_cache=False) == 2
    repo = Repo(cache)
    repo.get("u1", skip_cache=True)
    repo.get("u1", skip_cache=False)
    assert repo.calls == [("get", "u1"), ("get", "u1")]
