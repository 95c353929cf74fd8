"""The memo slot of a decorated call: a hashable stand-in for its arguments, equal only for the same call.

Decorated reads keep the key they rendered per slot (see ``_CachedState`` in :mod:`cachekit.decorators`), so
a slot must never be shared by two calls whose keys may differ:

* exact types only: ``1``, ``True`` and ``1.0`` are three slots (``bool`` and ``float`` are tagged with their
  type), a ``str`` subclass or any other object has no slot (its key is computed on every call);
* a ``dict``/``list``/``tuple`` argument is frozen from its *current* contents, so a caller that mutates its
  dict gets a new slot, never the old key;
* positional and keyword arguments are kept apart by a marker, so ``f("x", 1)`` and ``f(x=1)`` differ;
* bounded: an argument of more than :data:`FREEZE_LIMIT` values has no slot.

Calls that differ only in keyword order or in spelling (``f(1)`` and ``f(x=1)``) get different slots for the
same key: a slot is a cache of the key, so that costs one more render, never a wrong key.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FREEZE_LIMIT", "freeze", "memo_key"]

#: Values in one argument past which its call has no memo slot (its key is computed afresh).
FREEZE_LIMIT = 64
_FLAT_LIMIT = 16  # a dict of at most this many str keys and str/int/None values takes the flat path
_KEYWORDS = object()  # separates positional from keyword arguments in a slot; no argument freezes to it


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


def _frozen(value: Any) -> Any:
    """:func:`freeze` of one argument, with the common shapes (a scalar, a small flat dict) done inline.

    A flat dict freezes to ``(dict, (k1, v1, k2, v2, ...))``; :func:`freeze` gives a non-empty dict a tuple of
    pairs (tuples) instead, and a flat tuple holds no tuples, so the two forms never compare equal.
    """
    kind = type(value)
    if kind is str or kind is int or value is None:
        return value
    if kind is dict and len(value) <= _FLAT_LIMIT:
        flat: list[Any] = []
        for k, v in value.items():
            held = type(v)
            if type(k) is not str or not (held is str or held is int or v is None):
                break
            flat.append(k)
            flat.append(v)
        else:
            return (dict, tuple(flat))
    return freeze(value, [FREEZE_LIMIT])


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
        slot = [state, name]
        for value in args:
            slot.append(_frozen(value))
        if kwargs:
            slot.append(_KEYWORDS)
            for keyword, value in kwargs.items():
                slot.append(keyword)
                slot.append(_frozen(value))
        return tuple(slot)
    except (Unfreezable, RecursionError):
        return None
