"""How a decorated call is read: its arguments by name, its resource, and the namespace it caches in.

Shared by ``@cached`` (:mod:`cachekit._cached_state`) and ``@invalidates`` (:mod:`cachekit._invalidates`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from .cache import Cache
from .errors import ConfigurationError

__all__ = ["Signature", "chosen_cache", "cache_of", "resource_name", "signatures"]

_EMPTY = inspect.Parameter.empty


class Signature:
    """Maps a call's arguments to ``{name: value}`` without the ones left at their defaults."""

    __slots__ = ("defaults", "keyword_only", "positional", "var_positional")

    def __init__(self, parameters: Sequence[inspect.Parameter]) -> None:
        kinds = inspect.Parameter
        self.positional = [p.name for p in parameters if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
        self.var_positional = next((p.name for p in parameters if p.kind is kinds.VAR_POSITIONAL), None)
        self.keyword_only = [p.name for p in parameters if p.kind is kinds.KEYWORD_ONLY]
        self.defaults = {p.name: p.default for p in parameters if p.default is not _EMPTY}

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Every argument given, by name, in the signature's order (not the caller's keyword order)."""
        bound = dict(zip(self.positional, args, strict=False))
        if len(args) > len(self.positional):
            bound[self.var_positional or "args"] = list(args[len(self.positional) :])
        for name in (*self.positional[len(args) :], *self.keyword_only):
            if name in kwargs:
                bound[name] = kwargs[name]
        for name in sorted(set(kwargs) - set(bound)):
            bound[name] = kwargs[name]
        return bound

    def params(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """:meth:`bind` without the arguments left at their defaults: ``f()`` and ``f(limit=None)`` are one key."""
        defaults = self.defaults
        return {k: v for k, v in self.bind(args, kwargs).items() if k not in defaults or not _same(v, defaults[k])}


def _same(value: Any, default: Any) -> bool:
    if value is default:
        return True
    if type(value) is not type(default):
        return False
    try:
        return bool(value == default)
    except Exception:
        return False


def signatures(fn: Any) -> tuple[Signature, Signature]:
    """(for calls without an instance, for calls bound to an instance or class: first parameter dropped).

    An already-bound method (the plugin wraps ``resource.get``) gets its ``__self__`` as the instance from wrapt,
    while its signature has no ``self`` left to drop: both cases use that signature as it is.
    """
    if inspect.ismethod(fn):
        parameters = list(inspect.signature(fn).parameters.values())
        return Signature(parameters), Signature(parameters)
    target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    parameters = list(inspect.signature(target).parameters.values())
    return Signature(parameters), Signature(parameters[1:])


def resource_name(instance: Any, fallback: str) -> str:
    """The resource a call on ``instance`` reads: its ``name`` when that is a non-empty string (a ``str``
    subclass, a ``StrEnum`` member say, by its value), else its class's name in lower case (``fallback`` for
    a call with no instance)."""
    if instance is None:
        return fallback
    name = getattr(instance, "name", None)
    if isinstance(name, str) and name:
        return name if type(name) is str else str.__str__(name)
    cls = instance if isinstance(instance, type) else type(instance)
    return cls.__name__.lower()


def chosen_cache(cache: object, namespace: object, decorator: str) -> Cache | None:
    """The :class:`Cache` a decorator was given: ``cache=``, or ``namespace=``, its older spelling.

    ``namespace`` names a key space everywhere else (``Cache(namespace="users")``), so a string here is refused
    with the way to say it; both at once are refused too.
    """
    given, spelled = (cache, "cache") if namespace is None else (namespace, "namespace")
    if namespace is not None and cache is not None:
        raise ConfigurationError(f"{decorator}(cache=..., namespace=...): pass the Cache once, as cache=")
    if isinstance(namespace, str):
        raise ConfigurationError(
            f"{decorator}(namespace={namespace!r}): a namespace name goes to the Cache: "
            f"{decorator}(cache=Cache(namespace={namespace!r}))"
        )
    if given is not None and not isinstance(given, Cache):
        raise ConfigurationError(f"{decorator}({spelled}=...) takes a cachekit.Cache; got {given!r}")
    return given


def cache_of(instance: Any, explicit: Cache | None, what: str) -> Cache:
    """The :class:`Cache` a decorated call on ``instance`` uses: ``explicit`` (the decorator's ``cache=``), else
    the instance's ``cache`` attribute (a :class:`Cache`, or a resource facade's ``namespace_cache``).

    :raises ConfigurationError: there is none (the message says how to give one).
    """
    if explicit is not None:
        return explicit
    found = getattr(instance, "cache", None) if instance is not None else None
    if isinstance(found, Cache):
        return found
    namespace = getattr(found, "namespace_cache", None)  # a resource facade exposes its Cache this way
    if isinstance(namespace, Cache):
        return namespace
    raise ConfigurationError(
        f"{what} has no cache: pass cache=Cache(...) to the decorator, or give the class a "
        "'cache = Cache(...)' attribute"
    )
