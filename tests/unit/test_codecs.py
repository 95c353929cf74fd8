"""Codecs: the msgpack round-trip table, json, pickle, user pairs, compression and the envelope."""

from __future__ import annotations

import datetime as dt
import enum
import json
import struct
import uuid
import zlib
from collections import OrderedDict, namedtuple
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from cachekit import MISSING, Cache
from cachekit.codecs import (
    CHECKSUM_SIZE,
    HEADER_SIZE,
    Codec,
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    make_serializer,
)
from cachekit.errors import ConfigurationError, CorruptEntryError, InsecureSerializerWarning, SerializationError
from tests.conftest import FakeClock

PARIS_SUMMER = dt.timezone(dt.timedelta(hours=2))


def round_trip(value: Any, codec: Codec | None = None) -> Any:
    codec = codec or Codec()
    return codec.decode(codec.encode(value, None))


# -- the msgpack table (module docstring of cachekit.codecs), row by row ------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected_type"),
    [
        (None, type(None)),
        (True, bool),
        (False, bool),
        (0, int),
        (-(2**63), int),
        (2**64 - 1, int),
        (1.5, float),
        (float("inf"), float),
        ("héllo", str),
        ("", str),
        (b"\x00\xffbytes", bytes),
        ([1, "a", None], list),
        ((1, "a", (2, 3)), tuple),
        ((), tuple),
        ({"b": 1, "a": 2}, dict),
        ({1, 2, 3}, set),
        (frozenset({"x"}), frozenset),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 6), dt.datetime),
        (dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.timezone.utc), dt.datetime),
        (dt.datetime(2024, 6, 1, 12, tzinfo=PARIS_SUMMER), dt.datetime),
        (dt.date(2024, 2, 29), dt.date),
        (dt.time(23, 59, 58, 999), dt.time),
        (dt.time(1, 2, tzinfo=dt.timezone.utc), dt.time),
        (dt.timedelta(days=-1, seconds=5, microseconds=7), dt.timedelta),
        (Decimal("1.10"), Decimal),
        (Decimal("-1E+3"), Decimal),
        (uuid.UUID("12345678-1234-5678-1234-567812345678"), uuid.UUID),
    ],
    ids=repr,
)
def test_msgpack_round_trip_table(value: Any, expected_type: type) -> None:
    out = round_trip(value)
    assert out == value
    assert type(out) is expected_type


def test_msgpack_keeps_dict_order_and_nested_extension_types() -> None:
    value = {"z": 1, "a": [(1, {"s": {1, 2}})], "when": {"at": dt.date(2024, 1, 1)}}
    out = round_trip(value)
    assert out == value
    assert list(out) == ["z", "a", "when"]
    assert type(out["a"][0]) is tuple
    assert type(out["a"][0][1]["s"]) is set


def test_msgpack_dicts_with_non_string_keys_round_trip() -> None:
    value = {1: "a", 2: {3: "b"}, b"k": "bytes key", (1, 2): "tuple key"}
    assert round_trip(value) == value
    # Also when the payload is compressed.
    big = dict.fromkeys(range(200), "x" * 20)
    assert round_trip(big, Codec(compression="gzip", compression_threshold=64)) == big


def test_aware_datetimes_keep_their_offset_as_a_fixed_timezone() -> None:
    from zoneinfo import ZoneInfo

    value = dt.datetime(2024, 6, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))
    out = round_trip(value)
    assert out == value
    assert out.utcoffset() == dt.timedelta(hours=2)
    naive = round_trip(dt.datetime(2024, 6, 1, 12))
    assert naive.tzinfo is None


def test_bytearray_and_memoryview_come_back_as_bytes() -> None:
    for value in (bytearray(b"abc"), memoryview(b"abc")):
        out = round_trip(value)
        assert out == b"abc"
        assert type(out) is bytes


class MyStr(str):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyList(list[int]):
    pass


class MyDict(dict[str, int]):
    pass


Pair = namedtuple("Pair", "a b")


@pytest.mark.parametrize(
    ("value", "base"),
    [
        (MyStr("s"), str),
        (MyInt(3), int),
        (MyFloat(2.5), float),
        (MyList([1, 2]), list),
        (MyDict(a=1), dict),
        (OrderedDict(b=1, a=2), dict),
        (Pair(1, 2), tuple),
    ],
    ids=lambda v: type(v).__name__,
)
def test_subclasses_come_back_as_their_base_type(value: Any, base: type) -> None:
    out = round_trip(value)
    assert out == value
    assert type(out) is base


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    LOW = 1


@dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [Color.RED, Level.LOW, {"c": Color.RED}, 2**64, -(2**63) - 1, [2**70], object(), Point(1), {"f": len}],
    ids=repr,
)
def test_values_outside_the_table_are_a_serialization_error(value: Any) -> None:
    with pytest.raises(SerializationError, match="cannot serialize") as info:
        Codec().encode(value, None)
    assert isinstance(info.value, TypeError)  # callers that catch TypeError keep working
    assert "serializer" in str(info.value)  # says how to fix it


def test_enum_error_says_to_store_the_value() -> None:
    with pytest.raises(SerializationError, match=r"\.value"):
        Codec().encode(Color.RED, None)


# -- json, pickle, user pairs ----------------------------------------------------------------------------------------


def test_json_serializer_keeps_json_types_and_turns_tuples_into_lists() -> None:
    codec = Codec("json")
    assert round_trip({"a": [1, 2.5, None, True, "é"]}, codec) == {"a": [1, 2.5, None, True, "é"]}
    assert round_trip((1, 2), codec) == [1, 2]
    assert isinstance(codec.serializer, JsonSerializer)
    for bad in ({1, 2}, b"x", float("nan"), dt.date(2024, 1, 1)):
        with pytest.raises(SerializationError):
            codec.encode(bad, None)


def test_pickle_warns_that_shared_caches_must_not_use_it() -> None:
    with pytest.warns(InsecureSerializerWarning, match="executes code"):
        codec = Codec("pickle")
    assert isinstance(codec.serializer, PickleSerializer)
    value = {"p": Point(3), "c": Color.RED, "big": 2**100}
    assert round_trip(value, codec) == value


def test_pickle_through_the_cache_config_warns_too() -> None:
    with pytest.warns(InsecureSerializerWarning):
        cache = Cache(namespace="pk", config={"serializer": "pickle"})
    cache.set("k", Point(7))
    assert cache.get("k") == Point(7)


def test_msgpack_is_the_default() -> None:
    assert isinstance(Codec().serializer, MsgpackSerializer)
    assert isinstance(make_serializer(), MsgpackSerializer)
    assert isinstance(make_serializer(" MsgPack "), MsgpackSerializer)


def test_function_pair_returning_bytes() -> None:
    codec = Codec(lambda v: json.dumps(v).encode(), deserializer=json.loads)
    assert round_trip({"a": [1, 2]}, codec) == {"a": [1, 2]}


def test_function_pair_returning_str_is_stored_as_utf8() -> None:
    import base64

    # The original's documented pattern: the serializer returns text (base64 of JSON).
    codec = Codec(
        lambda v: base64.b64encode(json.dumps(v).encode()).decode(),
        deserializer=lambda raw: json.loads(base64.b64decode(raw)),
    )
    blob = codec.encode({"name": "Zoë"}, None)
    assert blob[HEADER_SIZE:-CHECKSUM_SIZE] == base64.b64encode(json.dumps({"name": "Zoë"}).encode())
    assert codec.decode(blob) == {"name": "Zoë"}


def test_function_pair_returning_str_gets_str_back() -> None:
    codec = Codec(",".join, deserializer=lambda raw: raw.split(","))
    assert round_trip(["a", "b"], codec) == ["a", "b"]
    # And a pair returning bytes gets bytes back.
    seen: list[type] = []
    codec = Codec(lambda v: v.encode(), deserializer=lambda raw: seen.append(type(raw)) or raw.decode())
    assert round_trip("x", codec) == "x"
    assert seen == [bytes]


def test_function_pair_errors() -> None:
    with pytest.raises(ConfigurationError, match="deserializer"):
        Codec(json.dumps)
    with pytest.raises(ConfigurationError, match="deserializer"):
        Codec("json", deserializer=json.loads)
    with pytest.raises(ConfigurationError, match=r"unknown serializer 'yaml'.*msgpack"):
        Codec("yaml")
    with pytest.raises(ConfigurationError, match="serializer must be"):
        Codec(42)
    codec = Codec(lambda v: 42, deserializer=json.loads)  # returns neither bytes nor str
    with pytest.raises(SerializationError, match="bytes or str"):
        codec.encode(1, None)


def test_a_serializer_class_instead_of_an_instance_is_rejected_at_construction() -> None:
    with pytest.raises(ConfigurationError, match=r"MsgpackSerializer\(\)"):
        Codec(MsgpackSerializer)


def test_a_serializer_object_is_used_as_given() -> None:
    class Upper:
        id = 9

        def dumps(self, value: Any) -> bytes:
            return str(value).upper().encode()

        def loads(self, data: bytes) -> Any:
            return data.decode()

    codec = Codec(Upper())
    assert round_trip("abc", codec) == "ABC"
    assert codec.encode("x", None)[SID_BYTE] == 9  # the serializer id travels in the envelope


# -- compression -----------------------------------------------------------------------------------------------------

SID_BYTE = 2  # magic, format, serializer id, flags
FLAG_BYTE = 3
COMPRESSION_BITS = 0x0F


@pytest.mark.parametrize(("name", "flag"), [("gzip", 1), ("zlib", 2)])
def test_compression_applies_at_and_above_the_threshold_only(name: str, flag: int) -> None:
    codec = Codec(compression=name, compression_threshold=100)
    small, big = "x" * 10, "x" * 5000
    small_blob, big_blob = codec.encode(small, None), codec.encode(big, None)
    assert small_blob[FLAG_BYTE] & COMPRESSION_BITS == 0
    assert big_blob[FLAG_BYTE] & COMPRESSION_BITS == flag
    assert len(big_blob) < 200  # 5000 repeated bytes compress to almost nothing
    assert codec.decode(small_blob) == small
    assert codec.decode(big_blob) == big


def test_no_threshold_means_no_compression() -> None:
    blob = Codec(compression="gzip", compression_threshold=None).encode("x" * 5000, None)
    assert blob[FLAG_BYTE] & COMPRESSION_BITS == 0


def test_the_cache_compresses_only_when_enabled(clock: FakeClock) -> None:
    on = Cache(namespace="z", clock=clock, config={"enable_compression": True, "compression_threshold": 100})
    off = Cache(namespace="z", clock=clock)
    for cache in (on, off):
        cache.set("big", "y" * 5000)
        cache.set("small", "y")
        assert cache.get("big") == "y" * 5000
    assert on.driver.get("z/big")[FLAG_BYTE] & COMPRESSION_BITS == 1
    assert on.driver.get("z/small")[FLAG_BYTE] & COMPRESSION_BITS == 0
    assert off.driver.get("z/big")[FLAG_BYTE] & COMPRESSION_BITS == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"compression": "lz4", "compression_threshold": 1}, "unknown compression 'lz4'"),
        ({"compression_threshold": -1}, "compression_threshold"),
        ({"compression_threshold": 1.5}, "compression_threshold"),
        ({"compression_level": 0}, "compression_level"),
        ({"compression_level": 10}, "compression_level"),
    ],
)
def test_bad_compression_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Codec(**options)


# -- the envelope ----------------------------------------------------------------------------------------------------


def test_envelope_header_records_format_serializer_and_times(clock: FakeClock) -> None:
    codec = Codec(clock=clock)
    blob = codec.encode({"a": 1}, 60)
    magic, version, sid, _flags, stored_at, expires_at = struct.unpack_from("<BBBBdd", blob)
    assert (magic, version, sid) == (0xCE, 2, 1)
    assert blob[-4:] == struct.pack("<I", zlib.crc32(blob[:-4]))  # the CRC-32 trailer
    assert HEADER_SIZE == 20
    assert stored_at == clock.now
    assert expires_at == clock.now + 60
    assert Codec.expires_at(blob) == clock.now + 60
    assert Codec.expires_at(codec.encode(1, None)) is None
    with pytest.raises(CorruptEntryError):
        Codec.expires_at(b"short")


def test_expired_envelope_decodes_to_missing(clock: FakeClock) -> None:
    codec = Codec(clock=clock)
    blob = codec.encode("v", 10)
    clock.advance(9.999)
    assert codec.decode(blob) == "v"
    clock.advance(0.001)
    assert codec.decode(blob) is MISSING
    forever = codec.encode("v", None)
    clock.advance(10**9)
    assert codec.decode(forever) == "v"


def test_a_cached_none_is_not_missing() -> None:
    codec = Codec()
    out = codec.decode(codec.encode(None, 5))
    assert out is None
    assert out is not MISSING


def reseal(blob: bytes) -> bytes:
    """``blob`` with its checksum recomputed: what the payload decoder sees when only the payload is bad."""
    body = blob[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def good_blob() -> bytes:
    return Codec().encode({"a": [1, 2, 3], "b": "x" * 50}, None)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\xce\x01",  # a truncated header
        good_blob()[: HEADER_SIZE + 5],  # a truncated payload
        b"plain garbage that is no cachekit envelope at all",
        bytes([0xCE, 9]) + good_blob()[2:],  # a future format version
        reseal(good_blob()[:HEADER_SIZE] + b"\xc1\xc1\xc1" + bytes(4)),  # msgpack's never-used byte
        reseal(Codec(compression="gzip", compression_threshold=1).encode("x" * 500, None)[:-10]),  # truncated gzip
    ],
    ids=["empty", "short-header", "short-payload", "garbage", "version-9", "bad-msgpack", "short-gzip"],
)
def test_undecodable_blobs_are_corrupt_entry_errors(blob: bytes) -> None:
    with pytest.raises(CorruptEntryError) as info:
        Codec().decode(blob)
    assert isinstance(info.value, ValueError)


def test_a_blob_from_another_serializer_is_foreign() -> None:
    blob = Codec("json").encode({"a": 1}, None)
    with pytest.raises(CorruptEntryError, match="another format or serializer"):
        Codec().decode(blob)
    with pytest.raises(CorruptEntryError):
        Codec("json").decode(Codec().encode({"a": 1}, None))
