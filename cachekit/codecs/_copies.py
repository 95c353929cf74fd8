"""Copies of decoded values: a fresh object for each hit, for a fraction of decoding the blob again.

A bytes-mode hit must give every caller its own object (a caller may mutate its result). Decoding the blob
again does that, but msgpack's decoder rebuilds every string and every dict slot: about 15,000 instructions
for a ten-field record, twice a whole cachetools hit. A *copy plan* made once from a decoded value rebuilds
only its containers and shares its immutable leaves (str, int, float, bytes, datetime, ...): for that record
a dict copy, a list copy and a small dict copy.

A plan is exact for the value it was made from and for nothing else; the memory driver's hit path
(:mod:`cachekit.drivers._memory_read`) applies it only to the decoded value of the very blob object it holds.
Values with anything but plain containers and immutable leaves, or too large or too deep, or holding one
mutable container in two places (pickle and custom deserializers can alias; a copy would not), get no plan
(they are decoded on every hit).
"""

from __future__ import annotations

import datetime as _dt
import functools
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from ._typed_blob import TypedBlob

__all__ = ["MAX_NODES", "Copier", "copier_for"]

Copier = Callable[[Any], Any]

#: Containers and leaves past which a value gets no plan.
MAX_NODES: Final = 512
_MAX_DEPTH: Final = 32
_SHARED: Final = frozenset(
    {str, int, float, bool, type(None), bytes, complex, _dt.datetime, _dt.date, _dt.time, _dt.timedelta,
     Decimal, uuid.UUID, frozenset, TypedBlob}
)  # fmt: skip  (a TypedBlob is never mutated: each hit decodes its payload into new objects)


class _NoPlan(Exception):
    pass


def copier_for(value: Any) -> Copier | None:
    """A function that copies ``value`` (and only it) as deeply as its mutable containers go, or ``None``.

    ``None`` means no plan: the value holds something other than dict/list/tuple/set and immutable leaves,
    or more than :data:`MAX_NODES` of them, or is nested too deep, or holds one dict/list/set twice (a copy
    would split what a fresh decoding shares). An immutable value copies to itself.
    """
    try:
        plan = _plan(value, [MAX_NODES], 0, set())
    except _NoPlan:
        return None
    return _itself if plan is None else plan


def _itself(value: Any) -> Any:
    return value


def _plan(value: Any, budget: list[int], depth: int, seen: set[int]) -> Copier | None:
    """The copier of ``value``; ``None`` when it can be shared as it is. ``seen``: ids of the mutable
    containers met so far (a tuple is immutable, but one holding a mutable container is met through it)."""
    budget[0] -= 1
    if budget[0] < 0 or depth > _MAX_DEPTH:
        raise _NoPlan
    kind = type(value)
    if kind in _SHARED:
        if kind is frozenset and not all(type(item) in _SHARED for item in value):
            raise _NoPlan
        return None
    if kind is dict or kind is list or kind is set:
        if id(value) in seen:
            raise _NoPlan  # aliased: copies of each place would no longer be one object
        seen.add(id(value))
    if kind is dict:
        inner = tuple((k, p) for k, v in value.items() if (p := _plan(v, budget, depth + 1, seen)) is not None)
        return functools.partial(_copy_dict, inner) if inner else dict.copy
    if kind is list or kind is tuple:
        plans = tuple(_plan(item, budget, depth + 1, seen) for item in value)
        if not any(plans):
            return list.copy if kind is list else None
        return functools.partial(_copy_list if kind is list else _copy_tuple, plans)
    if kind is set and all(type(item) in _SHARED for item in value):
        return set.copy
    raise _NoPlan


def _copy_dict(inner: tuple[tuple[Any, Copier], ...], value: dict[Any, Any]) -> dict[Any, Any]:
    copy = value.copy()
    for key, plan in inner:
        copy[key] = plan(value[key])
    return copy


def _copy_list(plans: tuple[Copier | None, ...], value: list[Any]) -> list[Any]:
    return [item if plan is None else plan(item) for item, plan in zip(value, plans, strict=True)]


def _copy_tuple(plans: tuple[Copier | None, ...], value: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(item if plan is None else plan(item) for item, plan in zip(value, plans, strict=True))
