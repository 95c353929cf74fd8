"""Issue 19, item 7: secrets not echoed, refused stores, unknown ext codes, unkeyable calls, iterators, options.

Each was measured on main: a lone ``verify_keys`` string and a ``config`` URL echoed in errors; a refused
``refresh()`` left the previous value to be served; unknown msgpack ext codes came back as raw ``ExtType``;
mixed partition-value key types and a raising key resolver escaped as ``TypeError``; ``store="objects"``
cached an exhausted generator; ``case_sensitive="false"`` and friends were silently accepted.
"""

from __future__ import annotations

import struct
import uuid
import warnings
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import msgpack
import pytest

from cachekit import Cache, CachePlugin, cached, register_key_resolver
from cachekit.codecs import Codec
from cachekit.codecs._codec import _HEADER
from cachekit.drivers.memory import MemoryDriver
from cachekit.errors import ConfigurationError, CorruptEntryError, UncacheableValueWarning
from cachekit.keys import KeySpec

SIGNING_KEY = b"tenant-a-signing-key-0123456789"


# -- secrets ------------------------------------------------------------------------------------------------------


def test_a_lone_verify_key_string_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError, match="verify_keys must be a list") as caught:
        Cache(config={"signing_key": SIGNING_KEY, "verify_keys": "old-secret-key-0123456789"})
    assert "old-secret" not in str(caught.value)


def test_a_config_url_string_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError, match="config must be a dict") as caught:
        Cache(driver="redis", config="redis://:hunter2-password@cache.internal:6379/0")  # type: ignore[arg-type]
    assert "hunter2" not in str(caught.value)
    assert "cache.internal" not in str(caught.value)


# -- a refused store ---------------------------------------------------------------------------------------------


class _Reports:
    name = "reports"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.size = 10
        self.calls = 0

    @cached(action="get")
    def get(self, id: str) -> str:
        self.calls += 1
        return "x" * self.size


@pytest.mark.parametrize("driver", ["memory", "redis"])
def test_a_refused_refresh_does_not_leave_the_previous_value(driver: str, request: pytest.FixtureRequest) -> None:
    config: dict[str, Any] = {"max_value_bytes": 1000}
    if driver == "redis":
        config |= {"url": request.getfixturevalue("redis_url"), "key_prefix": request.getfixturevalue("redis_prefix")}
    cache = Cache(driver=driver, namespace="refused", config=config)
    try:
        reports = _Reports(cache)
        assert reports.get("r1") == "x" * 10
        reports.size = 5000  # the source changed; the new result is over max_value_bytes
        with pytest.warns(UncacheableValueWarning, match="max_value_bytes"):
            assert reports.get.refresh("r1") == "x" * 5000
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UncacheableValueWarning)
            assert reports.get("r1") == "x" * 5000  # not the previous, smaller value
        assert reports.calls == 3
    finally:
        cache.close()


# -- unknown ext codes -------------------------------------------------------------------------------------------


def _envelope(codec: Codec, payload: bytes) -> bytes:
    body = _HEADER.pack(0xCE, 2, codec.serializer.id, 0x10, 0.0, 0.0) + payload
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("code", [0, 42, 127])
def test_an_unknown_ext_code_is_a_corrupt_entry(code: int) -> None:
    codec = Codec()
    blob = _envelope(codec, msgpack.packb({"a": [1, msgpack.ExtType(code, b"payload")]}))
    with pytest.raises(CorruptEntryError, match="unknown msgpack ext type"):
        codec.decode(blob)
    cache = Cache(namespace="ext")
    cache.driver.set("ext/k", blob, 60)
    assert cache.get("k", "miss") == "miss"
    assert cache.stats().errors == 1


# -- calls that cannot be keyed ----------------------------------------------------------------------------------


class _Counts:
    name = "users"
    partitions = {"p": ["a"]}

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.calls = 0

    @cached(action="count")
    def count(self, partition: str | None = None, partition_values: Mapping[Any, Any] | None = None) -> int:
        self.calls += 1
        return 3


def test_mixed_partition_value_key_types_run_uncached() -> None:
    counts = _Counts(Cache(namespace="mixed"))
    for _ in range(2):
        with pytest.warns(UncacheableValueWarning, match="cannot key this call"):
            assert counts.count(partition="p", partition_values={1: "x", "a": "y"}) == 3
    assert counts.calls == 2
    assert _Counts.count(counts, partition="p", partition_values={"a": "y"}) == 3  # keyable calls still cache
    assert _Counts.count(counts, partition="p", partition_values={"a": "y"}) == 3
    assert counts.calls == 3


def test_a_raising_key_resolver_runs_uncached() -> None:
    action = f"boom_{uuid.uuid4().hex[:8]}"

    def resolver(resource: str, action: str, params: Mapping[str, Any]) -> KeySpec:
        raise RuntimeError("resolver bug")

    register_key_resolver(action, resolver)

    class _Things:
        name = "things"

        def __init__(self) -> None:
            self.cache = Cache(namespace="boom")
            self.calls = 0

        @cached(action=action)
        def find(self, q: str) -> list[str]:
            self.calls += 1
            return [q]

    things = _Things()
    with pytest.warns(UncacheableValueWarning, match="RuntimeError: resolver bug"):
        assert things.find("a") == ["a"]
    assert things.calls == 1


# -- iterators in objects mode -----------------------------------------------------------------------------------


class _Streams:
    name = "streams"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.calls = 0

    @cached(action="list")
    def list(self, kind: str) -> Iterator[int]:
        self.calls += 1
        return (i for i in range(3)) if kind == "gen" else iter([0, 1, 2])


@pytest.mark.parametrize("kind", ["gen", "iter"])
def test_objects_mode_never_caches_an_iterator(kind: str) -> None:
    streams = _Streams(Cache(namespace="objects", config={"store": "objects"}))
    with pytest.warns(UncacheableValueWarning, match="iterator"):
        assert list(streams.list(kind)) == [0, 1, 2]
    with pytest.warns(UncacheableValueWarning, match="iterator"):
        assert list(streams.list(kind)) == [0, 1, 2]  # not the exhausted one
    assert streams.calls == 2


# -- wrong option values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"config": {"case_sensitive": "false"}}, "case_sensitive must be True or False"),
        ({"config": {"enable_stats": "no"}}, "enable_stats must be True or False"),
        ({"single_flight": "no"}, "single_flight must be True or False"),
        ({"method_policies": {"gett": {"ttl": 5}}}, r"'gett' \(did you mean 'get'\?\)"),
        ({"method_policies": {1: False}}, "unknown method_policies action '1'"),
        ({"lock_timeout": "1"}, "lock_timeout must be seconds"),
    ],
    ids=["case_sensitive", "enable_stats", "single_flight", "policies-typo", "policies-int", "lock_timeout"],
)
def test_a_wrong_option_value_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Cache(**options)


def test_wrong_driver_and_plugin_flags_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="enable_stats must be True or False"):
        MemoryDriver(enable_stats="no")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="promote_on_hit must be True or False"):
        CachePlugin(driver="memory", promote_on_hit="no")  # type: ignore[arg-type]
    assert Cache(method_policies={"get": False, "count": {"ttl": 5}}).policy("count").ttl == 5
