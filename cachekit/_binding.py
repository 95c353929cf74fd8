"""What ``@cached`` returns, and what it becomes when looked up on an instance or a class.

* :class:`CachedFunction`: the wrapt ``FunctionWrapper`` of a ``@cached`` callable, with the helpers
  (``.cache_key``, ``.uncached``, ``.invalidate``, ``.refresh``). Functions, classmethods, staticmethods,
  ``async def`` and the plugin's wrappers of bound methods bind through wrapt (:class:`BoundCachedFunction`).
* A plain ``def`` method gets a wrapper class of its own (:func:`cached_function`) whose ``__get__`` makes a
  lean binding (a subclass of :class:`BoundCached` with that method's hit path as ``__call__``), because wrapt's
  binding costs about 5,000 instructions per lookup, more than a whole cachetools hit. Both close over the
  method's :class:`~cachekit._cached_state.CachedState`, so a hit reads no attribute of the wrapper; the
  bound object has a single slot, its instance.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import wrapt

from ._cached_state import CachedCallable, CachedState, split_instance
from ._calls import cache_of, resource_name
from ._memo import memo_key
from ._types import MISSING
from .cache import Cache

__all__ = ["BoundCached", "BoundCachedFunction", "CachedFunction", "cached_function"]

if TYPE_CHECKING:
    _FunctionWrapper = wrapt.FunctionWrapper[..., Any]
    _BoundFunctionWrapper = wrapt.BoundFunctionWrapper[..., Any]
else:  # wrapt's classes are generic only in its stubs
    _FunctionWrapper = wrapt.FunctionWrapper
    _BoundFunctionWrapper = wrapt.BoundFunctionWrapper


class BoundCachedFunction(_BoundFunctionWrapper, CachedCallable):
    """What ``instance.method`` returns for a ``@cached`` method: callable, plus the cache helpers."""

    def _call_parts(self, args: tuple[Any, ...]) -> tuple[CachedState, Any, tuple[Any, ...], Callable[..., Any]]:
        state: CachedState = self._self_parent._self_state
        binding, instance = self._self_binding, self._self_instance
        if binding == "staticmethod":
            # No self to pass, but the class (or instance) it was looked up on names its resource and holds
            # its cache, as for the class's other methods; the state keys it by the free signature.
            return state, self._context(), args, self.__wrapped__
        if binding == "classmethod" and instance is None:
            # Looked up on the class: wrapt binds the class only at call time.
            owner = self._self_owner
            return state, owner, args, self._self_parent.__wrapped__.__get__(None, owner)
        instance, args, unbound = split_instance(instance, binding, args)
        call = functools.partial(self.__wrapped__, instance) if unbound else self.__wrapped__
        return state, instance, args, call

    def _context(self) -> Any:
        """What a staticmethod was looked up on: the instance, else the class."""
        return self._self_instance if self._self_instance is not None else self._self_owner


class BoundStaticCached(BoundCachedFunction):
    """A ``@cached`` staticmethod looked up on its class or an instance.

    wrapt hands a staticmethod's wrapper no instance; this one passes what it was looked up on, so the call
    finds the class's ``cache`` and ``name`` (and is cleared by the class's ``@invalidates``) like any method.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        wrapper: Callable[..., Any] = self._self_wrapper
        return wrapper(self.__wrapped__, self._context(), args, kwargs)


def _forwarded(name: str) -> Any:
    return property(lambda self: getattr(self._wrapt(), name), doc=f"``{name}`` of the wrapt binding.")


class BoundCached(CachedCallable):
    """What ``instance.method`` returns for a ``@cached`` plain method: the hit path, bound cheaply.

    wrapt binds a ``BoundFunctionWrapper`` on every lookup, which costs about 5,000 instructions (more than a
    whole cachetools hit); this sets two slots. Everything else a bound method has (``__wrapped__``,
    ``__func__``, ``__name__``...) and the helpers (``.cache_key`` ...) come from that wrapt binding
    (:class:`BoundCachedFunction`), made only when asked for. Like wrapt's proxy, it passes for a bound method
    (``inspect.ismethod``, ``inspect.signature`` without ``self``).
    """

    __slots__ = ("__self__",)
    __self__: Any
    _state: CachedState  # a class attribute of each method's own subclass (see cached_function)

    # What a bound method has, from the wrapt binding. Not a __getattr__: Python then reads every attribute,
    # those of the hit path too, through a slower hook. (``__qualname__`` cannot be a property of a class.)
    __wrapped__ = _forwarded("__wrapped__")
    __func__ = _forwarded("__func__")
    __name__ = _forwarded("__name__")
    __annotations__ = _forwarded("__annotations__")
    __defaults__ = _forwarded("__defaults__")
    __kwdefaults__ = _forwarded("__kwdefaults__")
    __code__ = _forwarded("__code__")
    __globals__ = _forwarded("__globals__")

    def _wrapt(self) -> BoundCachedFunction:
        instance = self.__self__
        return cast(BoundCachedFunction, _FunctionWrapper.__get__(self._state.wrapper, instance, type(instance)))

    def _call_parts(self, args: tuple[Any, ...]) -> tuple[CachedState, Any, tuple[Any, ...], Callable[..., Any]]:
        return self._wrapt()._call_parts(args)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return types.MethodType

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BoundCached):
            return self._state is other._state and self.__self__ is other.__self__
        return bool(self._wrapt() == other)

    def __hash__(self) -> int:
        return hash((self._state, id(self.__self__)))

    def __repr__(self) -> str:
        return f"<cached bound method {self._state.fn.__qualname__} of {self.__self__!r}>"


class CachedFunction(_FunctionWrapper, CachedCallable):
    """A ``@cached`` function (or a method looked up on its class)."""

    __bound_function_wrapper__ = BoundCachedFunction

    def __init__(self, wrapped: Any, state: CachedState, is_async: bool) -> None:
        super().__init__(wrapped, state.entry(is_async))
        self._self_state = state
        state.wrapper = self

    def _call_parts(self, args: tuple[Any, ...]) -> tuple[CachedState, Any, tuple[Any, ...], Callable[..., Any]]:
        return self._self_state, None, args, self.__wrapped__


class _StaticCachedFunction(CachedFunction):
    """A ``@cached`` staticmethod: binds to :class:`BoundStaticCached`."""

    __bound_function_wrapper__ = BoundStaticCached


def cached_function(fn: Any, state: CachedState, is_async: bool) -> CachedFunction:
    """The wrapper of ``fn``: a lean-binding class of its own for a plain sync ``def``, else the shared one."""
    if isinstance(fn, staticmethod):
        return _StaticCachedFunction(fn, state, is_async)
    if type(fn) is not types.FunctionType or is_async:
        return CachedFunction(fn, state, is_async)
    # The method's own __doc__ and __module__, as a bound method has (a class statement would set its own).
    call = _hit_path(state) if state.freshness is None else _fresh_path(state)
    namespace = {"__slots__": (), "_state": state, "__call__": call, "__doc__": fn.__doc__}
    bound_class = type("BoundCached", (BoundCached,), {**namespace, "__module__": fn.__module__})

    def __get__(self: CachedFunction, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return _FunctionWrapper.__get__(self, instance, owner)
        bound = bound_class()
        bound.__self__ = instance
        return bound

    lean = type("CachedFunction", (CachedFunction,), {"__get__": __get__, "__slots__": ()})
    return cast(CachedFunction, lean(fn, state, is_async))


def _fresh_path(state: CachedState) -> Callable[..., Any]:
    """The ``__call__`` of a method's lean binding when the method has freshness policies of its own."""
    fn, action, explicit, what = state.fn, state.action, state.namespace, state.what
    fresh_hit = _fresh_hit(state)

    def __call__(self: BoundCached, *args: Any, **kwargs: Any) -> Any:
        instance = self.__self__
        ns = explicit
        if ns is None:
            ns = getattr(instance, "cache", None)
            if type(ns) is not Cache:
                ns = cache_of(instance, None, what)
        if kwargs or action in ns.disabled_actions:
            return state.fresh_wrapper(types.MethodType(fn, instance), instance, args, kwargs)
        return fresh_hit(instance, args, ns)

    return __call__


def _fresh_hit(state: CachedState) -> Callable[[Any, tuple[Any, ...], Cache], Any]:
    """A positional call of a method with freshness policies of its own: the lean key steps, a plain read, and
    after a miss :meth:`cachekit._freshness.FreshState.after_miss`."""
    fn, action, ttl, own = state.fn, state.action, state.ttl, state.freshness
    resource, fallback, lookup = state.resource, state.fallback_name, state.memo_lookup
    assert own is not None  # only made for a callable with policies of its own

    def fresh_hit(instance: Any, args: tuple[Any, ...], ns: Cache) -> Any:
        name = resource
        if not name:
            try:
                name = instance.name
            except AttributeError:
                name = None
            if type(name) is not str or not name:
                name = resource_name(instance, fallback)
        if len(args) == 1 and (type(args[0]) is str or type(args[0]) is int or args[0] is None):
            slot: Any = (state, name, args[0])
        else:
            slot = memo_key(state, name, args, {})
        entry = ns._key_memo.get(slot)
        key: str | None
        if entry is not None and entry[1] == entry[2].epoch:
            key = entry[0]
        else:
            key = lookup(ns, name, instance, args, {}, slot)
            if key is None:
                return fn(instance, *args)
        read = ns._read  # an attribute, not a method: see _hit_path
        value = read(key)
        if value is not MISSING:
            return value
        return ns._fresh.after_miss(key, name, action, own, functools.partial(fn, instance, *args), ttl)

    return fresh_hit


def _hit_path(state: CachedState) -> Callable[..., Any]:
    """The ``__call__`` of a method's lean binding: :meth:`CachedState.__call__`'s steps, with everything fixed
    at decoration time in closure cells. Every line runs on every hit; nothing is allocated but the memo slot.
    """
    fn, action, ttl, what, explicit = state.fn, state.action, state.ttl, state.what, state.namespace
    resource, fallback = state.resource or None, state.fallback_name  # "" names no resource either
    typed = state.typed  # a typed return (cachekit._typed_returns), else None: one test per hit
    keyed = _miss_key(state)

    def __call__(self: BoundCached, first: Any = _NO_ARGUMENT, /, *rest: Any, **kwargs: Any) -> Any:
        # The first positional argument comes as ``first``: a one-argument call builds no tuple (about 400
        # instructions a hit); ``_arguments(first, rest)`` is the call's tuple, made off the hit path.
        instance = self.__self__
        ns = explicit
        if ns is None:
            try:  # the memo is read from a Cache only; anything else (None, a facade) finds its Cache the long way
                ns = instance.cache
                memo = ns._key_memo
            except AttributeError:
                ns = cache_of(instance, None, what)
                memo = ns._key_memo
        else:
            memo = ns._key_memo
        name = resource
        if name is None:
            try:
                name = instance.name
            except AttributeError:
                name = None
            if name is None:
                name = resource_name(instance, fallback)
        # ``name`` is checked only after a miss: the memo holds slots of valid names (non-empty strings) alone,
        # and a str subclass equal to one names that very resource (resource_name): no other name finds a slot.
        if not kwargs and not rest and (type(first) is str or type(first) is int or first is None):
            slot: Any = (state, name, first)
        else:
            slot = memo_key(state, name, _arguments(first, rest), kwargs)
        try:
            entry = memo.get(slot)
        except Exception:  # a name that does not hash (or compare): it has no slot, the miss resolves it
            entry = None
        if entry is not None and entry[1] == entry[2].epoch:
            # Never a skip_cache call (the slot of one is never stored), nor an action the namespace disables
            # (no slot of one is stored either: CachedState.memo_lookup).
            key = entry[0]
        else:
            key, result = keyed(instance, ns, name, _arguments(first, rest), kwargs, slot)
            if key is None:
                return result
        read = ns._read  # an attribute, not a method: LOAD_METHOD would take its slow path (~120 instructions)
        value = read(key)
        if typed is not None:
            if value is not MISSING:
                value = typed.hit(ns, key, value)
                if value is not MISSING:
                    return value
            loader = functools.partial(fn, instance, *_arguments(first, rest), **kwargs)
            return typed.load(ns, key, action, loader, ttl)
        if value is not MISSING:
            return value
        return ns._load(key, action, functools.partial(fn, instance, *_arguments(first, rest), **kwargs), ttl)

    return __call__


def _miss_key(
    state: CachedState,
) -> Callable[[Any, Cache, Any, tuple[Any, ...], dict[str, Any], Any], tuple[str | None, Any]]:
    """What the lean hit path does when the memo has no current key for a call: ``(key, None)``, or
    ``(None, result)`` when the call ran uncached (an action the namespace disables, ``skip_cache``, arguments
    that cannot be keyed)."""
    fn, action, fallback, lookup = state.fn, state.action, state.fallback_name, state.memo_lookup

    def keyed(
        instance: Any, ns: Cache, name: Any, args: tuple[Any, ...], kwargs: dict[str, Any], slot: Any
    ) -> tuple[str | None, Any]:
        if "skip_cache" in kwargs or (ns.disabled_actions and action in ns.disabled_actions):
            if kwargs:  # skip_cache and all: the generic path handles it
                return None, state(types.MethodType(fn, instance), instance, args, kwargs)
            return None, fn(instance, *args)
        if type(name) is not str or not name:  # an empty name, another type: the resource it resolves to
            name = resource_name(instance, fallback)
            slot = memo_key(state, name, args, kwargs)
        key = lookup(ns, name, instance, args, kwargs, slot)
        if key is None:
            return None, fn(instance, *args, **kwargs)
        return key, None

    return keyed


#: What the lean binding's ``first`` is when the call has no positional argument.
_NO_ARGUMENT: Any = object()


def _arguments(first: Any, rest: tuple[Any, ...]) -> tuple[Any, ...]:
    """The positional arguments of a lean-binding call, as a tuple (off the hit path only)."""
    return () if first is _NO_ARGUMENT else (first, *rest)
