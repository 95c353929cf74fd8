"""Aware datetimes in a ``zoneinfo`` zone keep their zone through msgpack (``ISO[Zone/Key]``); stored zone keys that
are not real zones, or that do not fit their offset, are corrupt entries: refused by the codec, a miss in a cache.
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachekit import Cache
from cachekit.codecs import Codec, _codec
from cachekit.errors import CorruptEntryError

NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")


def round_trip(value: Any, codec: Codec | None = None) -> Any:
    codec = codec or Codec()
    return codec.decode(codec.encode(value, None))


def envelope(text: str) -> bytes:
    """A well-formed checked envelope (msgpack, extension flag) holding one stored datetime text."""
    payload = msgpack.packb(msgpack.ExtType(1, text.encode()))
    body = _codec._HEADER.pack(0xCE, 2, 1, 0x10, 0.0, 0.0) + payload
    return body + _codec._CRC.pack(zlib.crc32(body))


def test_a_zoneinfo_datetime_comes_back_in_its_zone() -> None:
    value = dt.datetime(2024, 6, 1, 12, 30, 15, 123456, tzinfo=PARIS)
    out = round_trip(value)
    assert out == value
    assert isinstance(out.tzinfo, ZoneInfo)
    assert out.tzinfo.key == "Europe/Paris"
    assert out.utcoffset() == dt.timedelta(hours=2)
    # The zone's rules came back too: six months later is winter time, as for the original.
    later = out + dt.timedelta(days=180)
    assert later.utcoffset() == (value + dt.timedelta(days=180)).utcoffset() == dt.timedelta(hours=1)


@pytest.mark.parametrize("fold", [0, 1])
def test_both_sides_of_a_repeated_hour_keep_their_fold(fold: int) -> None:
    value = dt.datetime(2024, 11, 3, 1, 30, tzinfo=NEW_YORK, fold=fold)  # 01:30 happens twice
    out = round_trip(value)
    assert out.fold == fold
    assert out.utcoffset() == value.utcoffset() == dt.timedelta(hours=-4 if fold == 0 else -5)
    assert out.timestamp() == value.timestamp()
    assert out.tzinfo is NEW_YORK  # ZoneInfo instances are cached per key


@pytest.mark.parametrize("fold", [0, 1])
def test_a_time_in_a_skipped_hour_keeps_its_offset(fold: int) -> None:
    value = dt.datetime(2024, 3, 10, 2, 30, tzinfo=NEW_YORK, fold=fold)  # 02:30 never happens that day
    out = round_trip(value)
    assert out.utcoffset() == value.utcoffset()
    assert out.timestamp() == value.timestamp()


def test_zones_inside_containers_and_through_a_cache() -> None:
    cache = Cache(driver="memory", namespace="zi")
    value = {"at": [dt.datetime(2024, 11, 3, 1, 30, tzinfo=NEW_YORK, fold=1)], "pair": (dt.datetime(2020, 1, 1),)}
    cache.set("k", value)
    for _ in range(3):  # the first hit decodes, the later ones copy
        got = cache.get("k")
        assert got == value
        assert got["at"][0].fold == 1
        assert got["at"][0].tzinfo.key == "America/New_York"
        assert got["at"][0].utcoffset() == dt.timedelta(hours=-5)
        assert got["pair"][0].tzinfo is None


def test_fixed_offsets_and_naive_values_are_stored_without_a_zone_key() -> None:
    for value in (dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
                  dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
                  dt.datetime(2024, 1, 1)):  # fmt: skip
        blob = Codec().encode(value, None)
        stored = value.isoformat().encode()  # the envelope's other bytes (a checksum) may hold a "[" by chance
        assert stored in blob
        assert stored + b"[" not in blob
        out = round_trip(value)
        assert out == value
        assert out.utcoffset() == value.utcoffset()
        assert not isinstance(out.tzinfo, ZoneInfo)


@settings(max_examples=40, deadline=None)
@given(value=st.datetimes(timezones=st.timezones()))
def test_any_zone_round_trips(value: dt.datetime) -> None:
    out = round_trip(value)
    assert out == value
    assert out.utcoffset() == value.utcoffset()
    if isinstance(value.tzinfo, ZoneInfo):
        assert isinstance(out.tzinfo, ZoneInfo)
        assert out.tzinfo.key == value.tzinfo.key


def test_the_envelope_helper_makes_what_the_codec_reads() -> None:
    assert round_trip(dt.datetime(2024, 1, 1, tzinfo=PARIS)) == Codec().decode(
        envelope("2024-01-01T00:00:00+01:00[Europe/Paris]")
    )


HOSTILE = [
    "2024-01-01T00:00:00+00:00[../../etc/passwd]",
    "2024-01-01T00:00:00+00:00[/etc/passwd]",
    "2024-01-01T00:00:00+00:00[Nope/Zone]",
    "2024-01-01T00:00:00+01:00[Europe/Paris",  # no closing bracket
    "2024-01-01T00:00:00+01:00[Europe/Paris]]",
    "2024-01-01T00:00:00+00:00[]",
    "2024-01-01T00:00:00+00:00[Europe/Paris\x00]",
    "2024-01-01T00:00:00+00:00[zone.tab]",  # a file of the tz database that is no zone
    "2024-06-01T12:00:00+05:00[Europe/Paris]",  # an offset the zone never has then
    "2024-06-01T12:00:00[Europe/Paris]",  # a zone key on a naive time
    "not a date[Europe/Paris]",
]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("trusting", [False, True])
def test_a_hostile_zone_key_is_a_corrupt_entry(text: str, trusting: bool) -> None:
    codec = Codec()
    if trusting:
        assert codec.trust_local_blobs()
    with pytest.raises(CorruptEntryError):
        codec.decode(envelope(text))


@pytest.mark.parametrize("text", HOSTILE)
def test_a_hostile_zone_key_in_a_cache_is_a_miss_an_error_and_dropped(text: str) -> None:
    cache = Cache(driver="memory", namespace="zi")
    full = cache._full_key("k")
    cache.driver.set(full, envelope(text), 60)
    assert cache.get("k", "default") == "default"
    assert cache.errors == 1
    assert full not in cache.driver._data  # type: ignore[attr-defined]
    cache.set("k", dt.datetime(2024, 1, 1, tzinfo=PARIS))
    assert cache.get("k").tzinfo is PARIS
