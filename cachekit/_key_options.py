"""``@cached(ignore=...)``: arguments left out of the key, and the one warning for an argument that cannot be keyed.

A FastAPI ``AsyncSession``, a ``Request`` or a logger changes nothing in a read's result, and cannot be hashed
into a key. ``@cached(action="query", ignore=("session", "request"))`` leaves them out; a name in ``ignore``
that is not a parameter is refused at decoration. Without ``ignore=``, such an argument makes the call
uncached with one :class:`~cachekit.errors.UncacheableValueWarning` per parameter that names it and says to
add it to ``ignore=`` (not a silent uncached call on every request).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigurationError, SerializationError
from .keys import stable_hash

__all__ = ["UnkeyableArgument", "check_ignore", "keyed_params", "unkeyable_argument"]


class UnkeyableArgument(SerializationError):
    """An argument that cannot be part of a key; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def check_ignore(fn: Any, ignore: object) -> frozenset[str]:
    """The parameter names of ``ignore=``; refused when one is not a parameter of ``fn``."""
    if ignore is None:
        return frozenset()
    if isinstance(ignore, str) or not isinstance(ignore, Iterable):
        raise ConfigurationError(f"ignore= takes a tuple of parameter names, e.g. ignore=('session',); got {ignore!r}")
    names = frozenset(ignore)
    target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    parameters = inspect.signature(target).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name in sorted(names):
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigurationError(f"ignore= takes parameter names; got {name!r}")
        if name not in parameters and not takes_any:
            raise ConfigurationError(
                f"@cached(ignore=...) on {getattr(fn, '__qualname__', fn)!r}: {name!r} is not one of its parameters "
                f"({', '.join(parameters)})"
            )
    return names


def keyed_params(state: Any, instance: Any, args: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments by name that go into its key: not those left at their defaults, nor ignored ones."""
    signature = state.free if instance is None or state.static else state.bound  # a staticmethod has no self
    params: dict[str, Any] = signature.params(args, kwargs)
    for name in state.ignore:
        params.pop(name, None)
    return params


def unkeyable_argument(state: Any, params: Mapping[str, Any], cause: SerializationError) -> SerializationError:
    """The error for a call whose key cannot be built: naming the argument at fault when one is."""
    for name, value in params.items():
        try:
            stable_hash(value)
        except SerializationError:
            return UnkeyableArgument(
                name,
                f"argument {name!r} (a {type(value).__qualname__}) cannot be part of a cache key: called uncached "
                f"(this warning is given once). If it does not change the result (a session, a request, a logger), "
                f"add it to @cached(ignore=({name!r},)); else pass plain data or give its class a __cache_key__()",
            )
    return cause
