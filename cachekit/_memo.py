"""The memo slot of a decorated call: a hashable stand-in for its arguments, equal only for the same call.

Decorated reads keep the key they rendered per slot (see :mod:`cachekit._cached_state`), so a slot must never
be shared by two calls whose keys may differ:

* a call with no argument, or one ``str``/``int``/``None``, is its own slot: ``(state, resource, value)``;
* any other call is packed by msgpack with ``strict_types``: exact types only, so ``1``, ``True`` and ``1.0``
  pack differently, and a ``str`` subclass, an enum or any other object does not pack at all. The packed
  bytes are made from the arguments' *current* contents, so a caller that mutates its dict gets a new slot,
  never the old key. Packing is C: a partitioned read's ``partition_values={"region": "eu"}`` costs about as
  much as hashing one string;
* a packed slot is ``(state, resource, bytes)``: no other slot has ``bytes`` there (see :func:`storable`). A
  keyword-only call of a state whose namespace and resource are fixed at decoration (the plugin's reads) keys
  its state's own memo (``CachedState.packed_memo``) by the bare ``bytes``: state, resource and namespace are
  then constants of that memo, so the bytes alone are the same slot, without a tuple to build, hash and compare;
* what does not pack (a tuple, a set, an int past 64 bits) is frozen by :func:`freeze` instead; anything else,
  or arguments over :data:`PACKED_LIMIT` bytes or :data:`FREEZE_LIMIT` values, has no slot (its key is
  computed on every call).

Calls that differ only in keyword order or in spelling (``f(1)`` and ``f(x=1)``) get different slots for the
same key: a slot is a cache of the key, so that costs one more render, never a wrong key.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import msgpack

__all__ = ["FREEZE_LIMIT", "PACKED_LIMIT", "freeze", "memo_key", "pack", "storable"]

#: Values in one argument past which :func:`freeze` gives up (the call has no memo slot).
FREEZE_LIMIT = 64
#: Bytes of packed arguments past which a call has no memo slot.
PACKED_LIMIT = 1024
_KEYWORDS = object()  # separates positional from keyword arguments in a frozen slot; no argument freezes to it


def _packer() -> Callable[[Any], bytes]:
    """One shared Packer: packing plain data never runs Python code, so under the GIL it never interleaves.
    A free-threaded interpreter gets a Packer per call."""
    if getattr(sys, "_is_gil_enabled", lambda: True)():
        return msgpack.Packer(strict_types=True, autoreset=True).pack  # type: ignore[no-any-return]
    return lambda value: msgpack.packb(value, strict_types=True)


#: msgpack with strict types: the packed bytes of a slot (see the module docstring).
pack = _packer()


class Unfreezable(Exception):
    """An argument that is not plain data (or is too large): the call has no memo slot."""


def freeze(value: Any, budget: list[int]) -> Any:
    """A hashable stand-in for ``value`` that is equal only for the same types and contents.

    ``budget[0]`` is how many more values may be visited; :class:`Unfreezable` past it, or for anything that
    is not None, str, int, bool, float, or a dict/list/tuple of those.
    """
    budget[0] -= 1
    if budget[0] < 0:
        raise Unfreezable
    kind = type(value)
    if kind is str or kind is int or value is None:
        return value
    if kind is bool or kind is float:
        return (kind, value)
    if kind is dict:
        return (dict, tuple((freeze(k, budget), freeze(v, budget)) for k, v in value.items()))
    if kind is list or kind is tuple:
        return (kind, tuple(freeze(v, budget) for v in value))
    raise Unfreezable


def memo_key(state: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The memo slot of a call of ``state`` on resource ``name``, or ``None`` (no slot: compute its key)."""
    if not kwargs:
        if not args:
            return (state, name)
        if len(args) == 1:
            value = args[0]
            kind = type(value)
            if kind is str or kind is int or value is None:
                return (state, name, value)
    try:
        packed = pack(kwargs) if not args else pack([list(args), kwargs])
    except (TypeError, ValueError, OverflowError):  # not plain data (or a tuple, a set...): freeze it
        return _frozen_slot(state, name, args, kwargs)
    if len(packed) > PACKED_LIMIT:
        return None
    return (state, name, packed)


def storable(slot: Any) -> bool:
    """Whether ``slot`` may be kept: not a packed slot over :data:`PACKED_LIMIT` bytes (the hit paths pack
    keyword-only calls inline and leave this check to the miss that would store the slot).

    A packed slot is the only one whose third item is ``bytes``: a single argument takes the scalar form only
    for str/int/None, and :func:`freeze` refuses bytes. A bare ``bytes`` slot is a keyword-only call's packed
    arguments in the memo of its own state (``CachedState.packed_memo``).
    """
    if type(slot) is bytes:
        return len(slot) <= PACKED_LIMIT
    return len(slot) != 3 or type(slot[2]) is not bytes or len(slot[2]) <= PACKED_LIMIT


def _frozen_slot(state: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        budget = [FREEZE_LIMIT]
        slot = [state, name, *(freeze(value, budget) for value in args)]
        if kwargs:
            slot.append(_KEYWORDS)
            for keyword, value in kwargs.items():
                slot.append(keyword)
                slot.append(freeze(value, budget))
        return tuple(slot)
    except (Unfreezable, RecursionError):
        return None
