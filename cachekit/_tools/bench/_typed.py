"""Rows of section ``memory`` for typed results (issue 17): a hit of a 10-field dataclass and of a 10-field
Pydantic model, against the same data as a dict in bytes mode (``cachekit_msgpack``, target ≤ 2x its
instructions) and against ``pickle.loads`` of the same object (what peers that pickle pay to decode alone).

Skipped, with a note, when msgspec or Pydantic is not installed (``pip install 'cachekit-orm[typed]'``).
"""

from __future__ import annotations

import dataclasses
import pickle
from typing import Any

from ._core import Outcome, Section

__all__ = ["TYPED_TARGET", "typed_contender", "typed_outcomes", "typed_repos"]

#: The largest ratio of a typed hit's instructions to a dict hit's (``cachekit_msgpack``).
TYPED_TARGET = 2.0
_DICT_ROW = "cachekit_msgpack"
_LABELS = {
    "cachekit_dataclass": 'cachekit @cached -> a 10-field dataclass, Cache(driver="memory") (typed, msgspec)',
    "cachekit_pydantic": 'cachekit @cached -> a 10-field Pydantic model, Cache(driver="memory") (typed)',
    "pickle_dataclass": "pickle.loads of the same dataclass (the decode alone, no cache)",
    "pickle_pydantic": "pickle.loads of the same Pydantic model (the decode alone, no cache)",
}


@dataclasses.dataclass
class Address:
    """The nested record of the benchmark's value."""

    city: str
    zip: str


@dataclasses.dataclass
class UserRecord:
    """``_memory.RECORD`` as a dataclass."""

    id: str
    name: str
    email: str
    active: bool
    score: float
    visits: int
    tags: list[str]
    address: Address
    manager: str | None
    region: str


def _value(kind: str) -> Any:
    from ._core import RECORD

    fields = {**RECORD, "tags": list(RECORD["tags"])}
    if kind == "dataclass":
        return UserRecord(**{**fields, "address": Address(**RECORD["address"])})
    return _pydantic_class()(**fields)


_MODEL: list[Any] = []


def _pydantic_class() -> Any:
    if not _MODEL:
        import pydantic

        class PAddress(pydantic.BaseModel):
            city: str
            zip: str

        class PUserRecord(pydantic.BaseModel):
            id: str
            name: str
            email: str
            active: bool
            score: float
            visits: int
            tags: list[str]
            address: PAddress
            manager: str | None
            region: str

        for cls in (PAddress, PUserRecord):  # importable by name, so that pickle (the reference row) can load it
            cls.__qualname__ = cls.__name__
            globals()[cls.__name__] = cls
        _MODEL.append(PUserRecord)
    return _MODEL[0]


def _cachekit_repo(kind: str) -> Any:
    from cachekit import Cache, cached

    shared = Cache(driver="memory", namespace=f"bench-memory-{kind}")
    annotation = UserRecord if kind == "dataclass" else _pydantic_class()

    def get(self: Any, id: str) -> Any:
        return _value(kind)

    get.__annotations__["return"] = annotation
    return type("Repo", (), {"name": "users", "cache": shared, "get": cached(action="get")(get)})()


def _pickle_repo(kind: str) -> Any:
    blob = pickle.dumps(_value(kind), protocol=5)
    loads = pickle.loads

    class Repo:
        def get(self, id: str) -> Any:
            return loads(blob)

    return Repo()


def typed_contender(row_id: str) -> Any | None:
    """The repository of a typed row (``None`` for other rows)."""
    if row_id not in _LABELS:
        return None
    kind = row_id.split("_", 1)[1]
    return _cachekit_repo(kind) if row_id.startswith("cachekit_") else _pickle_repo(kind)


def typed_repos(notes: list[str]) -> dict[str, tuple[str, Any]]:
    """The typed rows: ``{row id: (label, repo)}``; none, with a note, without msgspec and Pydantic."""
    try:
        import msgspec  # noqa: F401
        import pydantic  # noqa: F401
    except ImportError:
        notes.append("msgspec or pydantic is not installed (pip install 'cachekit-orm[typed]'): typed rows skipped")
        return {}
    return {row_id: (label, typed_contender(row_id)) for row_id, label in _LABELS.items()}


def typed_outcomes(section: Section) -> None:
    """Typed hits against a dict hit (instructions, target ≤ 2x) and against ``pickle.loads`` of the same object."""
    rows = {row.id: row for row in section.rows}
    base = rows.get(_DICT_ROW)
    counted = {row_id: row.extra.get("instructions") for row_id, row in rows.items()}
    for kind in ("dataclass", "pydantic"):
        row = rows.get(f"cachekit_{kind}")
        if row is None or base is None:
            continue
        mine, dict_hit, pickled = counted.get(row.id), counted.get(_DICT_ROW), counted.get(f"pickle_{kind}")
        row.extra["vs_dict_time"] = row.median_ns / base.median_ns if base.median_ns else None
        if not mine or not dict_hit:
            continue
        ratio = mine / dict_hit
        section.outcomes.append(Outcome(
            f"cachekit_{kind}_instructions", f"typed hit ({kind}) vs the same data as a dict hit, instructions",
            round(ratio, 3), "x", f"≤ {TYPED_TARGET:g}x", "PASS" if ratio <= TYPED_TARGET else "MISS",
            f"{mine:,.0f} vs {dict_hit:,.0f}" + (f"; pickle.loads alone {pickled:,.0f}" if pickled else ""),
        ))  # fmt: skip
