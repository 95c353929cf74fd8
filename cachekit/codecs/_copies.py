"""Copies of decoded values: a fresh object for each hit, for a fraction of decoding the blob again.

A bytes-mode hit must give every caller its own object (a caller may mutate its result). Decoding the blob
again does that, but msgpack's decoder rebuilds every string and every dict slot: about 15,000 instructions
for a ten-field record, twice a whole cachetools hit. A *copy plan* made once from a decoded value rebuilds
only its containers and shares its immutable leaves (str, int, float, bytes, datetime, ...): for that record
a dict copy, a list copy and a small dict copy.

A plan is exact for the value it was made from and for any value of the same shape (the same dict keys and
list lengths wherever a mutable container sits), and nothing else; the memory driver's reader
(:meth:`MemoryDriver.reader <cachekit.drivers.memory.MemoryDriver.reader>`) applies it only to the decoded value
of the very blob object it holds.
Plans are shared: records of one shape get one plan object (a bounded table of :data:`MAX_PLANS`), so keeping a
value costs the value, not a plan per entry. Values with anything but plain containers and immutable leaves, or
too large or too deep, or holding one mutable container in two places (pickle and custom deserializers can
alias; a copy would not), get no plan (they are decoded on every hit).

:func:`plan` also estimates, in the same walk, the bytes a decoded value holds on its own (what keeping it
costs): ``sys.getsizeof`` of each container and of each leaf no other value holds too (a leaf's reference
count tells: msgpack interns dict keys, small ints and ``True``/``None`` are shared by everything).
"""

from __future__ import annotations

import datetime as _dt
import sys
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from ._typed_blob import TypedBlob

__all__ = ["MAX_NODES", "MAX_PLANS", "Copier", "copier_for", "plan"]

Copier = Callable[[Any], Any]

#: Containers and leaves past which a value gets no plan.
MAX_NODES: Final = 512
#: Distinct shared plans kept at once (the table is emptied when full; plans in use live on with their entries).
MAX_PLANS: Final = 256
_MAX_DEPTH: Final = 32
_SHARED: Final = frozenset(
    {str, int, float, bool, type(None), bytes, complex, _dt.datetime, _dt.date, _dt.time, _dt.timedelta,
     Decimal, uuid.UUID, frozenset, TypedBlob}
)  # fmt: skip  (a TypedBlob is never mutated: each hit decodes its payload into new objects)


class _NoPlan(Exception):
    pass


_PLANS: dict[tuple[Any, Any], Copier] = {}  # (function, its plan argument) -> the one partial for that shape
_sizeof = sys.getsizeof
_refs = sys.getrefcount
_SHARED_KEYS: Final = (str, int)  # dict keys a shared plan may name: equal means interchangeable (no NaN)


def copier_for(value: Any) -> Copier | None:
    """A function that copies ``value`` (and only it) as deeply as its mutable containers go, or ``None``.

    ``None`` means no plan: the value holds something other than dict/list/tuple/set and immutable leaves,
    or more than :data:`MAX_NODES` of them, or is nested too deep, or holds one dict/list/set twice (a copy
    would split what a fresh decoding shares). An immutable value copies to itself.
    """
    return plan(value)[0]


def plan(value: Any) -> tuple[Copier | None, int]:
    """``(copier_for(value), the bytes value holds on its own)`` in one walk (the size is 0 with no plan).

    The size counts ``sys.getsizeof`` of ``value`` itself and of every container and leaf inside it that no
    other object holds (judged by reference count), so a key interned by the decoder, a small int or
    ``None`` count nothing, and a string decoded for this value alone counts its full size.
    """
    state = [MAX_NODES, _sizeof(value)]
    try:
        copier = _plan(value, state, 0, set())
    except _NoPlan:
        return None, 0
    return (_itself if copier is None else copier), state[1]


def _itself(value: Any) -> Any:
    return value


def _shared(factory: Callable[[Any], Copier], argument: Any) -> Copier:
    """The one ``factory(argument)`` for this shape (made once, kept in a bounded table)."""
    key = (factory, argument)
    found = _PLANS.get(key)
    if found is None:
        if len(_PLANS) >= MAX_PLANS:
            _PLANS.clear()
        found = _PLANS.setdefault(key, factory(argument))
    return found


# The references the walk itself accounts for when it checks a child's count: the container's slot, the loop
# variable and getrefcount's argument. More means some other object holds the child too: it costs this value
# nothing.
_OWN_REFS: Final = 3


def _plan(value: Any, state: list[int], depth: int, seen: set[int]) -> Copier | None:
    """The copier of ``value``; ``None`` when it can be shared as it is. ``state``: [nodes left, bytes so far]
    (the caller counted ``value`` itself). ``seen``: ids of the mutable containers met so far (a tuple is
    immutable, but one holding a mutable container is met through it)."""
    state[0] -= 1
    if state[0] < 0 or depth > _MAX_DEPTH:
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
        inner = []
        shareable = True
        for key in value:
            if _refs(key) <= _OWN_REFS:
                state[1] += _sizeof(key)
            item = value[key]
            if _refs(item) <= _OWN_REFS:
                state[1] += _sizeof(item)
            copier = _plan(item, state, depth + 1, seen)
            if copier is not None:
                inner.append((key, copier))
                shareable = shareable and type(key) in _SHARED_KEYS
        if not inner:
            return dict.copy
        plans = tuple(inner)
        return _shared(_dict_copier, plans) if shareable else _dict_copier(plans)
    if kind is list or kind is tuple:
        children = []
        for item in value:
            if _refs(item) <= _OWN_REFS:
                state[1] += _sizeof(item)
            children.append(_plan(item, state, depth + 1, seen))
        if not any(children):
            return list.copy if kind is list else None
        return _shared(_list_copier if kind is list else _tuple_copier, tuple(children))
    if kind is set and all(type(item) in _SHARED for item in value):
        state[1] += sum(_sizeof(item) for item in value if _refs(item) <= _OWN_REFS)
        return set.copy
    raise _NoPlan


# The copiers are closures, not ``functools.partial`` objects over one function: a hit calls one from Python, and
# CPython runs a Python function called from Python in the caller's evaluation loop, while a partial is a C call
# that enters a new one (about 600 instructions more per copy, issue 22). A dict with one to three containers
# to copy (most records) gets an unrolled body: each call site then sees one copier, and no loop runs.


def _dict_copier(inner: tuple[tuple[Any, Copier], ...]) -> Copier:
    """The copier of a dict whose values under the keys of ``inner`` are copied by their plans (the rest shared)."""
    if len(inner) == 1:
        ((key1, plan1),) = inner

        def copy_dict_1(value: dict[Any, Any]) -> dict[Any, Any]:
            copy = value.copy()
            copy[key1] = plan1(value[key1])
            return copy

        return copy_dict_1
    if len(inner) == 2:
        (key1, plan1), (key2, plan2) = inner

        def copy_dict_2(value: dict[Any, Any]) -> dict[Any, Any]:
            copy = value.copy()
            copy[key1] = plan1(value[key1])
            copy[key2] = plan2(value[key2])
            return copy

        return copy_dict_2
    if len(inner) == 3:
        (key1, plan1), (key2, plan2), (key3, plan3) = inner

        def copy_dict_3(value: dict[Any, Any]) -> dict[Any, Any]:
            copy = value.copy()
            copy[key1] = plan1(value[key1])
            copy[key2] = plan2(value[key2])
            copy[key3] = plan3(value[key3])
            return copy

        return copy_dict_3

    def copy_dict(value: dict[Any, Any]) -> dict[Any, Any]:
        copy = value.copy()
        for key, plan in inner:
            copy[key] = plan(value[key])
        return copy

    return copy_dict


def _list_copier(plans: tuple[Copier | None, ...]) -> Copier:
    """The copier of a list whose items are copied by ``plans`` (``None``: shared)."""

    def copy_list(value: list[Any]) -> list[Any]:
        return [item if plan is None else plan(item) for item, plan in zip(value, plans, strict=True)]

    return copy_list


def _tuple_copier(plans: tuple[Copier | None, ...]) -> Copier:
    """The copier of a tuple whose items are copied by ``plans`` (``None``: shared)."""

    def copy_tuple(value: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(item if plan is None else plan(item) for item, plan in zip(value, plans, strict=True))

    return copy_tuple
