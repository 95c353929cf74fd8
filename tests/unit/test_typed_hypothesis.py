"""Generated dataclasses, Pydantic models and enums round-trip through a real Redis (issue 17)."""

import dataclasses
import datetime as dt
import enum
import itertools
import typing

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachekit import Cache, cached

_counter = itertools.count()
Shade = enum.Enum("Shade", {"LIGHT": "light", "DARK": "dark"})
Size = enum.IntEnum("Size", {"S": 1, "M": 2, "L": 3})

#: Field types a generated class may have, with a strategy of their values.
FIELD_TYPES: list[tuple[object, st.SearchStrategy[typing.Any]]] = [
    (int, st.integers(-(2**63), 2**63 - 1)),
    (str, st.text(max_size=20)),
    (float, st.floats(allow_nan=False)),
    (bool, st.booleans()),
    (bytes, st.binary(max_size=16)),
    (dt.date, st.dates()),
    (dt.datetime, st.datetimes(timezones=st.just(dt.timezone.utc))),
    (list[str], st.lists(st.text(max_size=5), max_size=4)),
    (dict[str, int], st.dictionaries(st.text(max_size=5), st.integers(0, 100), max_size=3)),
    (int | None, st.none() | st.integers(0, 10)),
    (Shade, st.sampled_from(Shade)),
    (Size, st.sampled_from(Size)),
]


@st.composite
def typed_values(draw: st.DrawFn) -> tuple[object, object]:
    """(a generated class, an instance of it): a dataclass or a Pydantic model, or an enum member."""
    kind = draw(st.sampled_from(["dataclass", "pydantic", "enum"]))
    if kind == "enum":
        member = draw(st.sampled_from([*Shade, *Size]))
        return type(member), member
    chosen = draw(st.lists(st.sampled_from(range(len(FIELD_TYPES))), min_size=1, max_size=6))
    fields = {f"f{i}": FIELD_TYPES[index] for i, index in enumerate(chosen)}
    values = {name: draw(strategy) for name, (_, strategy) in fields.items()}
    name = f"Generated{next(_counter)}"
    if kind == "dataclass":
        cls: typing.Any = dataclasses.make_dataclass(name, [(n, t) for n, (t, _) in fields.items()])
    else:
        cls = pydantic.create_model(name, **{n: (t, ...) for n, (t, _) in fields.items()})  # type: ignore[call-overload]
    return cls, cls(**values)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=typed_values())
def test_generated_typed_values_round_trip_through_redis(redis_url: str, redis_prefix: str,
                                                        case: tuple[object, object]) -> None:  # fmt: skip
    cls, value = case
    cache = Cache("redis", namespace="typed-hypothesis", config={"url": redis_url, "key_prefix": redis_prefix})
    calls = []
    try:

        def get(id: str) -> typing.Any:
            calls.append(id)
            return value

        get.__annotations__["return"] = cls
        cached_get = cached(action="get", namespace=cache, resource=f"r{next(_counter)}")(get)
        first, second = cached_get("k"), cached_get("k")
        assert calls == ["k"]
        assert type(second) is cls
        assert second == value
        assert first is value
    finally:
        cache.close()
