"""``@cached`` and ``@invalidates``: read-through caching and write invalidation for functions and methods.

Both are built on wrapt, so they work on functions, methods, classmethods (put the decorator outermost, above
``@classmethod``), staticmethods and ``async def``, keep the signature and ``__wrapped__``, and read the
resource from the bound instance: ``self`` never enters a key.

Every ``@cached`` callable carries ``.cache_key(...)``, ``.uncached(...)``, ``.invalidate(...)`` and
``.refresh(...)``, with the same arguments as the call, also through an instance (``repo.get.cache_key(1)``).
"""

from __future__ import annotations

import functools
import inspect
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import wrapt

from ._executor import run_blocking
from ._memo import Unfreezable, freeze, memo_key
from ._types import DEFAULT, MISSING, TTL, normalize_ttl
from ._typing import CachedDecorator
from .errors import ConfigurationError, SerializationError, UncacheableValueWarning
from .generations.view import KeyTemplate
from .keys import get_key_resolver, item_actions, mark_in_use, register_key_resolver, registered_actions, stable_hash
from .namespace import Cache
from .scopes import Invalidation

__all__ = ["cached", "invalidates"]

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    _FunctionWrapper = wrapt.FunctionWrapper[..., Any]
    _BoundFunctionWrapper = wrapt.BoundFunctionWrapper[..., Any]
else:  # wrapt's classes are generic only in its stubs
    _FunctionWrapper = wrapt.FunctionWrapper
    _BoundFunctionWrapper = wrapt.BoundFunctionWrapper

_EMPTY = inspect.Parameter.empty
_MEMO_LIMIT = 4096
_new = object.__new__

# Kept importable under their old names (tests and the metrics helper use them).
_memo_key = memo_key
_freeze = freeze
_Unfreezable = Unfreezable


class _Signature:
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


def _signatures(fn: Any) -> tuple[_Signature, _Signature]:
    """(for calls without an instance, for calls bound to an instance or class: first parameter dropped).

    An already-bound method (the plugin wraps ``resource.get``) gets its ``__self__`` as the instance from wrapt,
    while its signature has no ``self`` left to drop: both cases use that signature as it is.
    """
    if inspect.ismethod(fn):
        parameters = list(inspect.signature(fn).parameters.values())
        return _Signature(parameters), _Signature(parameters)
    target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    parameters = list(inspect.signature(target).parameters.values())
    return _Signature(parameters), _Signature(parameters[1:])


def _resource_name(instance: Any, fallback: str) -> str:
    if instance is None:
        return fallback
    name = getattr(instance, "name", None)
    if type(name) is str and name:
        return name
    cls = instance if isinstance(instance, type) else type(instance)
    return cls.__name__.lower()


def _namespace_of(instance: Any, explicit: Cache | None, what: str) -> Cache:
    if explicit is not None:
        return explicit
    found = getattr(instance, "cache", None) if instance is not None else None
    if isinstance(found, Cache):
        return found
    namespace = getattr(found, "namespace_cache", None)  # a resource facade exposes its Cache this way
    if isinstance(namespace, Cache):
        return namespace
    raise ConfigurationError(
        f"{what} has no cache: pass namespace=Cache(...) to the decorator, or give the class a "
        "'cache = Cache(...)' attribute"
    )


class _CachedState:
    """Everything fixed at decoration time; ``__call__``/``acall`` are the wrapt wrappers."""

    def __init__(
        self, fn: Any, action: str, namespace: Cache | None, resource: str | None, ttl: Any, id_param: str
    ) -> None:
        self.action = action
        self.namespace = namespace
        self.resource = resource
        self.fallback_name = getattr(fn, "__name__", "function")
        self.ttl = ttl
        self.resolver = get_key_resolver(action)
        self.free, self.bound = _signatures(fn)
        self.what = f"@cached {self.fallback_name}()"
        self.id_param = id_param
        self.fn = fn
        #: The ``_CachedFunction`` of this state (set by it), for the wrapt binding of :class:`_BoundCached`.
        self.wrapper: Any = None

    # -- keys ------------------------------------------------------------------------------------------------

    def key(self, ns: Cache, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The key of a call; ``None`` (with a warning) when its arguments cannot be keyed.

        Calls made of plain data reuse the key rendered the first time (a bounded memo) for as long as the
        generations of its resource stay as they were, so a hit neither hashes its arguments nor looks up
        generations.
        """
        name = self.resource or _resource_name(instance, self.fallback_name)
        return self.memo_lookup(ns, name, instance, args, kwargs, memo_key(self, name, args, kwargs))

    def memo_lookup(
        self, ns: Cache, name: str, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], slot: Any
    ) -> str | None:
        """The key in memo slot ``slot`` (``None``: the call has none), rendered again when its epoch moved."""
        memo = ns._key_memo
        entry = memo.get(slot) if slot is not None else None
        if entry is not None:
            if entry[1] == entry[2].epoch:
                return entry[0]
            template = entry[3]
        else:
            try:
                template = self.template(ns, name, instance, args, kwargs)
            except (SerializationError, RecursionError) as exc:
                warnings.warn(f"{self.what}: {exc}; called uncached", UncacheableValueWarning, stacklevel=4)
                return None
        key, epoch = ns._gens.render(template)
        if slot is not None:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            memo[slot] = (key, epoch, template.cell, template)
        return key

    def template(
        self, ns: Cache, name: str, instance: Any, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> KeyTemplate:
        """The generation-free key of a call, with the scopes it depends on."""
        signature = self.free if instance is None else self.bound
        params = signature.params(args, kwargs)
        if self.id_param != "id" and self.id_param in params:
            params["id"] = params.pop(self.id_param)
        spec = self.resolver(name, self.action, params)
        partitions = getattr(instance, "partitions", None) if instance is not None else None
        if isinstance(partitions, Mapping):
            ns.declare_partitions(name, partitions)
        return ns.key_template(spec)

    def compute_key(self, ns: Cache, name: str, instance: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        return ns._gens.render(self.template(ns, name, instance, args, kwargs))[0]

    # -- calls -----------------------------------------------------------------------------------------------

    def __call__(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The wrapt wrapper: functions, methods looked up on their class, classmethods, staticmethods, and the
        plugin's wrappers of bound methods. A method looked up on an instance takes :class:`_BoundCached`.
        """
        if kwargs and "skip_cache" in kwargs and kwargs.pop("skip_cache"):
            return wrapped(*args, **_skip_inner(wrapped, kwargs))
        ns = self.namespace
        if ns is None:
            ns = getattr(instance, "cache", None)
            if type(ns) is not Cache:
                ns = _namespace_of(instance, None, self.what)
        if ns.disabled_actions and self.action in ns.disabled_actions:
            return wrapped(*args, **kwargs)
        name = self.resource or _resource_name(instance, self.fallback_name)
        slot = memo_key(self, name, args, kwargs)
        entry = ns._key_memo.get(slot)  # no entry is ever stored under None
        key: str | None
        if entry is not None and entry[1] == entry[2].epoch:
            key = entry[0]
        else:
            key = self.memo_lookup(ns, name, instance, args, kwargs, slot)
            if key is None:
                return wrapped(*args, **kwargs)
        value = ns._read(key)
        if value is not MISSING:
            return value
        return ns._load(key, self.action, functools.partial(wrapped, *args, **kwargs), self.ttl)

    async def acall(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs and "skip_cache" in kwargs and kwargs.pop("skip_cache"):
            return await wrapped(*args, **_skip_inner(wrapped, kwargs))
        ns = self.namespace or _namespace_of(instance, None, self.what)
        if self.action in ns.disabled_actions:
            return await wrapped(*args, **kwargs)
        key = self.key(ns, instance, args, kwargs)
        if key is None:
            return await wrapped(*args, **kwargs)
        # A blocking driver must not stall the event loop: its async twins (native for Redis, else cachekit's executor).
        value = await ns._aread(key) if ns.driver.blocking else ns._read(key)
        if value is not MISSING:
            return value
        return await ns._aload(key, self.action, functools.partial(wrapped, *args, **kwargs), self.ttl)

    def refresh(self, ns: Cache, key: str, value: Any) -> Any:
        ttl = self.ttl if self.ttl is not DEFAULT else ns.policy(self.action).ttl
        ns._write(key, value, ns.ttl if ttl is DEFAULT else ttl, None)
        return value


def _skip_inner(wrapped: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pass ``skip_cache`` on when the wrapped callable is itself cached (stacked plugin instances)."""
    if isinstance(wrapped, (_CachedFunction, _BoundCachedFunction, _BoundCached)):
        kwargs["skip_cache"] = True
    return kwargs


def _split_instance(instance: Any, binding: str, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...], bool]:
    """Through the class (``Repo.get.cache_key(repo, 1)``) the instance is the first argument."""
    if instance is None and binding == "function" and args:
        return args[0], args[1:], True
    return instance, args, False


class _BoundCachedFunction(_BoundFunctionWrapper):
    """What ``instance.method`` returns for a ``@cached`` method: callable, plus the cache helpers."""

    def _cache_parts(self, args: tuple[Any, ...]) -> tuple[_CachedState, Cache, Any, tuple[Any, ...], bool]:
        state: _CachedState = self._self_parent._self_state
        binding, instance = self._self_binding, self._self_instance
        if binding == "staticmethod":
            instance = None  # wrapt reports the instance it was looked up on; a staticmethod has no self
        elif binding == "classmethod" and instance is None:
            instance = self._self_owner  # looked up on the class: wrapt binds the class only at call time
        instance, args, unbound = _split_instance(instance, binding, args)
        return state, _namespace_of(instance, state.namespace, state.what), instance, args, unbound

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The key this call would read and write."""
        state, ns, instance, args, _ = self._cache_parts(args)
        name = state.resource or _resource_name(instance, state.fallback_name)
        return state.compute_key(ns, name, instance, args, kwargs)

    def uncached(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method itself, neither reading nor writing the cache."""
        _, _, instance, args, unbound = self._cache_parts(args)
        kwargs = _skip_inner(self.__wrapped__, kwargs)
        if unbound:
            return self.__wrapped__(instance, *args, **kwargs)
        if self._self_binding == "classmethod" and self._self_instance is None:
            return self._self_parent.__wrapped__.__get__(None, instance)(*args, **kwargs)
        return self.__wrapped__(*args, **kwargs)

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Remove this call's entry; return whether one was there."""
        _, ns, _, _, _ = self._cache_parts(args)
        return ns.delete(self.cache_key(*args, **kwargs))

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method, store its result whatever the policies say, and return it."""
        state, ns, _, _, _ = self._cache_parts(args)
        key = self.cache_key(*args, **kwargs)
        return state.refresh(ns, key, self.uncached(*args, **kwargs))


def _forwarded(name: str) -> Any:
    return property(lambda self: getattr(self._wrapt(), name), doc=f"``{name}`` of the wrapt binding.")


class _BoundCached:
    """What ``instance.method`` returns for a ``@cached`` plain method: the hit path, bound cheaply.

    wrapt binds a ``BoundFunctionWrapper`` on every lookup, which costs about 5,000 instructions (more than a
    whole cachetools hit); this sets two slots. Everything else a bound method has (``__wrapped__``,
    ``__func__``, ``__name__``...) and the helpers (``.cache_key`` ...) come from that wrapt binding
    (:class:`_BoundCachedFunction`), made only when asked for. Like wrapt's proxy, it passes for a bound method
    (``inspect.ismethod``, ``inspect.signature`` without ``self``).
    """

    __slots__ = ("__self__", "_state")
    __self__: Any
    _state: _CachedState

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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Every line runs on every hit: the same steps as _CachedState.__call__, with no bound method built
        # unless the call misses.
        state = self._state
        instance = self.__self__
        if kwargs and "skip_cache" in kwargs:
            return state(types.MethodType(state.fn, instance), instance, args, kwargs)
        ns = state.namespace
        if ns is None:
            try:
                ns = instance.cache
            except AttributeError:
                ns = None
            if type(ns) is not Cache:
                ns = _namespace_of(instance, None, state.what)
        if ns.disabled_actions and state.action in ns.disabled_actions:
            return state.fn(instance, *args, **kwargs)
        name = state.resource
        if not name:
            try:
                name = instance.name
            except AttributeError:
                name = None
            if type(name) is not str or not name:
                name = _resource_name(instance, state.fallback_name)
        if not kwargs and len(args) == 1:
            value = args[0]
            kind = type(value)
            slot = (state, name, value) if kind is str or kind is int or value is None else memo_key(
                state, name, args, kwargs
            )
        else:
            slot = memo_key(state, name, args, kwargs)
        entry = ns._key_memo.get(slot)
        key: str | None
        if entry is not None and entry[1] == entry[2].epoch:
            key = entry[0]
        else:
            key = state.memo_lookup(ns, name, instance, args, kwargs, slot)
            if key is None:
                return state.fn(instance, *args, **kwargs)
        value = ns._read(key)
        if value is not MISSING:
            return value
        return ns._load(key, state.action, functools.partial(state.fn, instance, *args, **kwargs), state.ttl)

    def _wrapt(self) -> _BoundCachedFunction:
        instance = self.__self__
        return cast(_BoundCachedFunction, _FunctionWrapper.__get__(self._state.wrapper, instance, type(instance)))

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The key this call would read and write."""
        return self._wrapt().cache_key(*args, **kwargs)

    def uncached(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method itself, neither reading nor writing the cache."""
        return self._wrapt().uncached(*args, **kwargs)

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Remove this call's entry; return whether one was there."""
        return self._wrapt().invalidate(*args, **kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Call the method, store its result whatever the policies say, and return it."""
        return self._wrapt().refresh(*args, **kwargs)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return types.MethodType

    @property
    def __doc__(self) -> str | None:  # type: ignore[override]
        return cast("str | None", self._state.fn.__doc__)

    @property
    def __module__(self) -> str:  # type: ignore[override]
        return cast(str, self._state.fn.__module__)

    def __eq__(self, other: object) -> bool:
        if type(other) is _BoundCached:
            return self._state is other._state and self.__self__ is other.__self__
        return bool(self._wrapt() == other)

    def __hash__(self) -> int:
        return hash((self._state, id(self.__self__)))

    def __repr__(self) -> str:
        return f"<cached bound method {self._state.fn.__qualname__} of {self.__self__!r}>"



class _CachedFunction(_FunctionWrapper):
    """A ``@cached`` function (or a method looked up on its class)."""

    __bound_function_wrapper__ = _BoundCachedFunction

    def __init__(self, wrapped: Any, state: _CachedState, is_async: bool) -> None:
        super().__init__(wrapped, state.acall if is_async else state)
        self._self_state = state
        state.wrapper = self
        # A plain sync function bound through an instance takes the lean binding (see _BoundCached).
        self._self_fast = state if type(wrapped) is types.FunctionType and not is_async else None

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        state = self._self_fast
        if state is None or instance is None:
            return _FunctionWrapper.__get__(self, instance, owner)
        bound = _new(_BoundCached)
        bound.__self__ = instance
        bound._state = state
        return bound

    def _free(self) -> tuple[_CachedState, Cache]:
        state: _CachedState = self._self_state
        return state, _namespace_of(None, state.namespace, state.what)

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The key this call would read and write."""
        state, ns = self._free()
        return state.compute_key(ns, state.resource or state.fallback_name, None, args, kwargs)

    def uncached(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function itself, neither reading nor writing the cache (nor a cached function it wraps)."""
        return self.__wrapped__(*args, **_skip_inner(self.__wrapped__, kwargs))

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Remove this call's entry; return whether one was there."""
        return self._free()[1].delete(self.cache_key(*args, **kwargs))

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function, store its result whatever the policies say, and return it."""
        state, ns = self._free()
        return state.refresh(ns, self.cache_key(*args, **kwargs), self.uncached(*args, **kwargs))


def cached(
    action: str | None = None,
    *,
    namespace: Cache | None = None,
    resource: str | None = None,
    ttl: TTL = DEFAULT,
    id_param: str | None = None,
) -> CachedDecorator:
    """Cache a read: a hit returns the stored value, a miss calls through and stores the result.

    E.g.::

        class UserRepository:
            name = "users"
            cache = Cache(driver="memory", ttl=60)

            @cached(action="get")
            def get(self, id): ...

            @cached(action="query", ttl=30)
            def query(self, filter, **options): ...

        repo.get("u1")                    # cached
        repo.get("u1", skip_cache=True)   # read through, not stored
        repo.get.cache_key("u1")          # 'cachekit/resource=users/action=get/...'

    For type checkers the result keeps the function's parameters and return type and has the helpers
    (:class:`cachekit._typing.CachedMethod`); see docs/architecture.md, "Typing of the decorators".

    :param action: the key resolver to use (``"get"``, ``"list"``, ``"count"`` ...); defaults to the function's
        name. An action without a resolver is registered as one whose every argument counts.
    :param namespace: the :class:`Cache` to use; by default the instance's (or class's) ``cache`` attribute.
    :param resource: the resource name in keys; by default the instance's ``name`` or its class name.
    :param ttl: overrides the namespace's TTL (and its method policy) for this method.
    :param id_param: for one-item actions (``get``, ``exists`` ...), the parameter that holds the item id
        (default ``"id"``): writes to that id invalidate the entry. Never a position: ``get(email=...)`` on
        ``def get(self, id=None, *, email=None)`` is keyed by the email and invalidated by any write.
    """
    if action is not None and not isinstance(action, str):
        raise ConfigurationError(
            f"cached(action=...) takes the action name; got {action!r}. Write @cached() or @cached(action='get')"
        )
    if namespace is not None and not isinstance(namespace, Cache):
        raise ConfigurationError(f"namespace must be a cachekit.Cache; got {namespace!r}")
    if id_param is not None and (not isinstance(id_param, str) or not id_param.isidentifier()):
        raise ConfigurationError(f"id_param must be a parameter name such as 'email'; got {id_param!r}")
    seconds = ttl if ttl is DEFAULT else normalize_ttl(ttl)

    def decorate(fn: F) -> F:
        name: str = action or getattr(fn, "__name__", "") or "call"
        if name not in registered_actions():
            register_key_resolver(name)
        mark_in_use(name)
        chosen = _check_id_param(fn, name, id_param)
        state = _CachedState(fn, name, namespace, resource, seconds, chosen)
        target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
        return cast(F, _CachedFunction(fn, state, inspect.iscoroutinefunction(target)))

    return cast(CachedDecorator, decorate)


def _check_id_param(fn: Any, action: str, id_param: str | None) -> str:
    """The id parameter of a one-item read; refused when the function has no such parameter."""
    if action not in item_actions():
        if id_param is not None:
            raise ConfigurationError(f"id_param is for one-item actions such as 'get'; {action!r} is not one")
        return "id"
    chosen = id_param or "id"
    target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
    parameters = inspect.signature(target).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    if chosen not in parameters and not takes_any:
        raise ConfigurationError(
            f"@cached(action={action!r}) on {getattr(fn, '__qualname__', fn)!r}: there is no parameter named "
            f"{chosen!r} to take the item id from (ids are never taken by position); rename it, or name it with "
            f"@cached(action={action!r}, id_param='...')"
        )
    if chosen != "id" and "id" in parameters:
        raise ConfigurationError(f"id_param={chosen!r} on a function that also has a parameter named 'id'")
    return chosen


# -- invalidation -----------------------------------------------------------------------------------------------

_CREATES = frozenset({"insert", "create", "add", "upsert", "set"})
_CREATES_MANY = frozenset({"insert_many", "create_many", "upsert_many"})
_CHANGES = frozenset({"update", "patch", "replace", "set_content", "delete_content"})
_DELETES = frozenset({"delete", "remove"})
_DELETES_MANY = frozenset({"delete_many", "remove_many"})


class _InvalidatesState:
    def __init__(
        self,
        fn: Any,
        action: str,
        namespace: Cache | None,
        resource: str | None,
        partitions: Mapping[str, Sequence[str]] | None,
        before: Callable[..., Any] | None,
    ) -> None:
        self.action, self.namespace, self.resource = action, namespace, resource
        self.partitions, self.before = partitions, before
        self.fallback_name = getattr(fn, "__name__", "function")
        self.free, self.bound = _signatures(fn)
        self.what = f"@invalidates {self.fallback_name}()"

    def __call__(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ns = self.namespace or _namespace_of(instance, None, self.what)
        old = self._old_records(instance, args, kwargs)
        result: Any = MISSING
        try:
            result = wrapped(*args, **kwargs)
            return result
        finally:
            # Also after a failed write: it may have changed something before failing; clearing is always safe.
            ns.invalidate(self.safe_invalidation(instance, args, kwargs, old, result))

    def safe_invalidation(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], old: list[Any] | None, result: Any
    ) -> Invalidation:
        """:meth:`invalidation`, or the whole resource when the write's arguments cannot be read or hashed."""
        try:
            invalidation = self.invalidation(instance, args, kwargs, old, result)
            for item_id in invalidation.ids:
                stable_hash(item_id)
        except Exception:
            name = self.resource or _resource_name(instance, self.fallback_name)
            return Invalidation(name, whole=True)
        return invalidation

    async def acall(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ns = self.namespace or _namespace_of(instance, None, self.what)
        old = self._old_records(instance, args, kwargs)
        if inspect.isawaitable(old):  # an async before= hook
            try:
                old = _old_state(await old)
            except Exception:
                old = None
        result: Any = MISSING
        try:
            result = await wrapped(*args, **kwargs)
            return result
        finally:
            invalidation = self.safe_invalidation(instance, args, kwargs, old, result)
            await run_blocking(ns.driver, ns.invalidate, invalidation)  # inline when the driver never blocks

    def _old_records(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The old record(s) from ``before=``: a list, ``None`` when unknown, or an awaitable of them."""
        if self.before is None:
            return None
        call_args = (instance, *args) if instance is not None else args
        try:
            found = self.before(*call_args, **kwargs)
        except Exception:
            return None  # unknown old state: fall back to clearing every partition
        return found if inspect.isawaitable(found) else _old_state(found)

    def invalidation(
        self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], old: list[Any] | None, result: Any
    ) -> Invalidation:
        name = self.resource or _resource_name(instance, self.fallback_name)
        partitions = self.partitions if self.partitions is not None else getattr(instance, "partitions", None)
        if not isinstance(partitions, Mapping):
            ns = self.namespace or _namespace_of(instance, None, self.what)
            partitions = ns.partitions_of(name) or {}
        values = list((self.free if instance is None else self.bound).bind(args, kwargs).values())
        first = values[0] if values else None
        second = values[1] if len(values) > 1 else None
        action = self.action
        if action in _CREATES or action in _CREATES_MANY:
            written = first if action in _CREATES_MANY else [first]
            returned = result if isinstance(result, list) else [result]
            new = [r for r in [*list(written or []), *returned] if isinstance(r, Mapping)]
            ids = [r["id"] for r in new if "id" in r]
            ids += [r for r in returned if isinstance(r, (str, int)) and not isinstance(r, bool)]  # a returned new id
            # A plain insert has no old state; an upsert may have replaced a row, which only before= can tell.
            complete = bool(new) and (old is not None or not action.startswith("upsert"))
        elif action in _CHANGES:
            ids = [first]
            new = [_after_change(action, old, second, result)]
            new = [r for r in new if isinstance(r, Mapping)]
            complete = old is not None and bool(new)
        elif action in _DELETES or action in _DELETES_MANY:
            ids = list(first or []) if action in _DELETES_MANY else [first]
            new, complete = [], old is not None
        else:
            return Invalidation(name, whole=True)
        ids += [r["id"] for r in old or [] if "id" in r]
        return Invalidation(
            name,
            ids=list(dict.fromkeys(i for i in ids if i is not None)),
            records=[*(old or []), *new],
            partitions=partitions,
            records_complete=complete,
        )


def _old_state(found: Any) -> list[Any] | None:
    """What ``before=`` returned as a list of records; ``None`` (unknown) unless it is ``None`` or mappings."""
    if found is None:
        return []
    records = found if isinstance(found, list) else [found]
    return records if all(isinstance(r, Mapping) for r in records) else None


def _after_change(action: str, old: list[Any] | None, data: Any, result: Any) -> Any:
    """The record after an update: the write's result when it returns one, else the old record merged with data."""
    if isinstance(result, Mapping):
        return result
    if not isinstance(data, Mapping):
        return None
    if action == "replace" or not old:
        return data if action == "replace" else None
    return {**old[0], **data}


def invalidates(
    action: str = "update",
    *,
    namespace: Cache | None = None,
    resource: str | None = None,
    partitions: Mapping[str, Sequence[str]] | None = None,
    before: Callable[..., Any] | None = None,
) -> Callable[[F], F]:
    """Invalidate what a write changes, after it runs (also when it raises).

    The action says how to read the call: ``insert(data)``/``upsert(data)``, ``insert_many(items)``,
    ``update(id, data)``/``patch``/``replace``, ``delete(id)``, ``delete_many(ids)``; any other action clears the
    whole resource. The item entries of the ids written are cleared, with every aggregate (lists, counts,
    pages, queries) outside partitions; partitions are cleared precisely when the old records are known
    (``before=``) and the new ones are in the call or its result, else every partition of the resource.

    E.g.::

        @invalidates("update", before=lambda self, id, data: self.get.uncached(id))
        def update(self, id, data): ...

    :param action: the kind of write, see above.
    :param namespace: the :class:`Cache`; by default the instance's ``cache`` attribute.
    :param resource: the resource name; by default the instance's ``name`` or its class name.
    :param partitions: ``{"by_region": ["region"]}``; by default the instance's ``partitions`` attribute.
    :param before: called with the write's arguments before it runs; returns the old record(s) (or ``None``).
    """
    if not isinstance(action, str) or not action:
        raise ConfigurationError(f"invalidates(action) takes the write's name such as 'update'; got {action!r}")
    if namespace is not None and not isinstance(namespace, Cache):
        raise ConfigurationError(f"namespace must be a cachekit.Cache; got {namespace!r}")

    def decorate(fn: F) -> F:
        if namespace is not None and resource and partitions is not None:
            namespace.declare_partitions(resource, partitions)  # so reads of these partitions scope precisely
        state = _InvalidatesState(fn, action, namespace, resource, partitions, before)
        target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
        wrapper = state.acall if inspect.iscoroutinefunction(target) else state
        return cast(F, wrapt.FunctionWrapper(fn, wrapper))

    return decorate
