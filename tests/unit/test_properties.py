"""Properties over generated data: the codec round-trips what it documents, keys ignore dict order."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cachekit.codecs import Codec
from cachekit.keys import stable_hash
from tests.conftest import same_value

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
    st.dates(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.uuids(),
    st.timedeltas(),
)
HASHABLE = st.one_of(st.integers(-1000, 1000), st.text(max_size=8), st.uuids(), st.dates())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
        st.dictionaries(st.integers(-5, 5), inner, max_size=3),
        st.frozensets(HASHABLE, max_size=4),
        st.sets(HASHABLE, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=VALUES, compress=st.booleans())
def test_msgpack_codec_round_trips_every_documented_type(value: Any, compress: bool) -> None:
    codec = Codec("msgpack", compression="gzip", compression_threshold=0 if compress else None)
    assert same_value(codec.decode(codec.encode(value, ttl=None)), value)


@settings(max_examples=200, deadline=None)
@given(items=st.dictionaries(st.text(max_size=6), st.one_of(st.integers(), st.text(max_size=6)), max_size=8))
def test_key_hash_ignores_dict_order(items: dict[str, Any]) -> None:
    reordered = dict(reversed(list(items.items())))
    assert stable_hash(items) == stable_hash(reordered)


@settings(max_examples=200, deadline=None)
@given(a=VALUES, b=VALUES)
def test_different_params_get_different_hashes(a: Any, b: Any) -> None:
    # Equal data may share a hash (1 and 1.0 do, on purpose); different data must not collide.
    if stable_hash(a) == stable_hash(b):
        assert _canonically_equal(a, b), (a, b)


def _canonically_equal(a: Any, b: Any) -> bool:
    if isinstance(a, (set, frozenset)) and isinstance(b, (set, frozenset)):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_canonically_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_canonically_equal(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (Decimal, uuid.UUID, dt.date, dt.timedelta)) or isinstance(b, (Decimal, uuid.UUID, dt.date)):
        return type(a) is type(b) and a == b
    return bool(a == b)
