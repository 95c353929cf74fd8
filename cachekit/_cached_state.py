"""The state of one ``@cached`` callable, fixed at decoration time, and the generic path of its calls.

:class:`CachedState` keys a call (through the namespace's bounded key memo: see :mod:`cachekit._memo`), reads
it, and loads it on a miss. It is the wrapt wrapper of functions, classmethods, staticmethods, ``async def``
and methods looked up on their class; a plain method looked up on an instance takes the lean binding of
:mod:`cachekit._binding` instead, which runs the same steps with fewer lookups.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ._calls import cache_of, resource_name, signatures
from ._executor import run_blocking
from ._freshness import Freshness
from ._key_options import UnkeyableArgument, keyed_params, unkeyable_argument
from ._memo import memo_key, pack, storable
from ._typed_returns import TypedReturn, typed_return
from ._types import DEFAULT, MISSING
from .cache import Cache
from .errors import ConfigurationError, SerializationError, UncacheableValueWarning
from .generations.view import KeyTemplate
from .keys import get_key_resolver

__all__ = ["MEMO_LIMIT", "CachedCallable", "CachedState", "skip_inner", "split_instance"]

#: Key-memo slots per namespace; the memo is cleared when full.
MEMO_LIMIT = 1024


class CachedCallable:
    """The objects ``@cached`` makes (wrappers and bindings): the helpers, written once for all of them.

    Each kind says only how a call splits (:meth:`_call_parts`); ``.cache_key``, ``.uncached``, ``.invalidate``
    and ``.refresh`` are these. Also marks them, so a stacked cache can be skipped (:func:`skip_inner`).
    """

    __slots__ = ()
    __wrapped__: Any  # the callable ``@cached`` decorated (wrapt's, or the lean binding's forwarded one)

    def _call_parts(self, args: tuple[Any, ...]) -> tuple[CachedState, Any, tuple[Any, ...], Callable[..., Any]]:
        """``(state, instance, args, call)``: the instance the call is keyed, named and cached by (``None`` for a
        function; the class or instance a staticmethod was looked up on), the arguments after it, and the
        callable those arguments go to when the call runs uncached."""
        raise NotImplementedError

    def cache_key(self, *args: Any, **kwargs: Any) -> str:
        """The key this call would read and write."""
        state, instance, args, _ = self._call_parts(args)
        return state.compute_key(state.cache_for(instance), state.name_for(instance), instance, args, kwargs)

    def uncached(self, *args: Any, **kwargs: Any) -> Any:
        """Call through, neither reading nor writing the cache (nor a cached callable it wraps)."""
        _, _, args, call = self._call_parts(args)
        return call(*args, **skip_inner(self.__wrapped__, kwargs))

    def invalidate(self, *args: Any, **kwargs: Any) -> bool:
        """Invalidate this call's entry in every process (a generation bump); return whether one was here."""
        state, instance, args, _ = self._call_parts(args)
        return state.invalidate(state.cache_for(instance), state.name_for(instance), instance, args, kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Call through, store the result whatever the policies say, and return it."""
        state, instance, _, _ = self._call_parts(args)
        ns = state.cache_for(instance)
        key, value = self.cache_key(*args, **kwargs), self.uncached(*args, **kwargs)
        if state.is_async:  # the coroutine's result is what is stored: a coroutine to await, as the call is
            return state.arefresh(ns, key, value)
        return state.refresh(ns, key, value)


class CachedState:
    """Everything fixed at decoration time; ``__call__``/``acall`` are the wrapt wrappers."""

    def __init__(
        self,
        fn: Any,
        action: str,
        namespace: Cache | None,
        resource: str | None,
        ttl: Any,
        id_param: str,
        *,
        version: str | None = None,
        ignore: frozenset[str] = frozenset(),
        freshness: Freshness | None = None,
    ) -> None:
        self.action = action
        self.namespace = namespace
        self.resource = resource
        #: The key memo of keyword-only calls, by their packed arguments alone, when the namespace and the resource
        #: are fixed at decoration (the plugin's reads): in this memo a slot needs no ``(state, name, ...)`` tuple
        #: around its bytes (see :mod:`cachekit._memo`); ``None`` otherwise (the namespace's memo, tuple slots).
        self.packed_memo: dict[bytes, tuple[str, int, Any, KeyTemplate]] | None = (
            {} if namespace is not None and resource else None
        )
        self.fallback_name = getattr(fn, "__name__", "function")
        self.ttl = ttl
        self.resolver = get_key_resolver(action)
        self.free, self.bound = signatures(fn)
        self.what = f"@cached {self.fallback_name}()"
        self.id_param = id_param
        self.fn = fn
        #: A staticmethod: called without an instance, but keyed, namespaced and named by the class it is looked
        #: up on (the ``instance`` its wrappers get is that class or instance, never an argument).
        self.static = isinstance(fn, staticmethod)
        #: The :class:`~cachekit._binding.CachedFunction` of this state (set by it), for the wrapt binding of
        #: :class:`~cachekit._binding.BoundCached`.
        self.wrapper: Any = None
        # Issue 17: typed results (cachekit._typed_returns), @cached(version=...), @cached(ignore=...).
        self.typed: TypedReturn | None = typed_return(fn, self.what)
        self.version = version
        self.ignore = ignore
        self._unkeyable_warned: set[str] = set()
        #: ``@cached(stale_while_revalidate=...)`` and friends (issue 21); a namespace's method policy otherwise.
        self.freshness = freshness
        #: An ``async def``: its calls and ``.refresh`` are awaited (set by :meth:`entry`).
        self.is_async = False
        if freshness is not None and self.typed is not None:
            raise ConfigurationError(
                f"{self.what}: freshness policies (stale_while_revalidate, stale_if_error, early_refresh) are not "
                "supported with a typed return annotation yet; return plain data, or drop the policy"
            )

    def freshness_in(self, ns: Cache) -> Freshness | None:
        """The freshness policies of this callable's reads in ``ns``: its own, else the namespace's for its action
        (never for a typed return, which keeps the plain path)."""
        if self.typed is not None:
            return None
        return self.freshness or ns._fresh.policies.get(self.action)

    def entry(self, is_async: bool) -> Any:
        """The wrapt wrapper: the plain paths, or the freshness paths when this callable has policies of its own."""
        self.is_async = is_async
        if self.freshness is None:
            return self.acall if is_async else self
        return self.afresh_wrapper if is_async else self.fresh_wrapper

    def cache_for(self, instance: Any) -> Cache:
        """The :class:`Cache` a call on ``instance`` (``None``: a function) reads and writes."""
        return cache_of(instance, self.namespace, self.what)

    def name_for(self, instance: Any) -> str:
        """The resource a call on ``instance`` (``None``: a function) is keyed by."""
        return self.resource or resource_name(instance, self.fallback_name)

    # -- keys ------------------------------------------------------------------------------------------------

    def key(self, ns: Cache, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """The key of a call; ``None`` (with a warning) when its arguments cannot be keyed.

        Calls made of plain data reuse the key rendered the first time (a bounded memo) for as long as the
        generations of its resource stay as they were, so a hit neither hashes its arguments nor looks up
        generations.
        """
        name = self.resource or resource_name(instance, self.fallback_name)
        return self.memo_lookup(ns, name, instance, args, kwargs, memo_key(self, name, args, kwargs))

    def memo_lookup(
        self,
        ns: Cache,
        name: str,
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        slot: Any,
        memo: dict[Any, Any] | None = None,
    ) -> str | None:
        """The key in memo slot ``slot`` (``None``: the call has none), rendered again when its epoch moved.

        ``memo`` is the memo ``slot`` belongs to: the namespace's by default, :attr:`packed_memo` for a bare
        ``bytes`` slot of a keyword-only call.
        """
        if memo is None:
            memo = ns._key_memo
        if slot is None and self.ignore:  # an ignored argument (a session) does not pack: slot the others
            slot = memo_key(self, name, (), keyed_params(self, instance, args, kwargs))
        entry = memo.get(slot) if slot is not None else None
        if entry is not None:
            if entry[1] == entry[2].epoch:
                return entry[0]
            template: KeyTemplate = entry[3]
        else:
            found = self._template_or_none(ns, name, instance, args, kwargs, 5)
            if found is None:
                return None
            template = found
        key, epoch = ns._gens.render(template)
        if self.action not in ns.disabled_actions:  # the hit paths skip the check for a slot they find
            _remember(memo, slot, key, epoch, template)
        return key

    async def akey(self, ns: Cache, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
        """:meth:`key` on the event loop: a current memo slot as is, else rendered with generations read through
        the store's async client (``GenerationView.arender``), never a blocking call on the loop's thread.
        The same slots, templates and refusals as :meth:`memo_lookup`; only the render differs."""
        name = self.resource or resource_name(instance, self.fallback_name)
        slot = memo_key(self, name, args, kwargs)
        memo = ns._key_memo
        if slot is None and self.ignore:
            slot = memo_key(self, name, (), keyed_params(self, instance, args, kwargs))
        entry = memo.get(slot) if slot is not None else None
        if entry is not None:
            if entry[1] == entry[2].epoch:
                return entry[0]
            template: KeyTemplate = entry[3]
        else:
            found = self._template_or_none(ns, name, instance, args, kwargs, 4)
            if found is None:
                return None
            template = found
        key, epoch = await ns._gens.arender(template)
        if self.action not in ns.disabled_actions:  # as memo_lookup
            _remember(memo, slot, key, epoch, template)
        return key

    def _template_or_none(
        self, ns: Cache, name: str, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], stacklevel: int
    ) -> KeyTemplate | None:
        """The call's key template; ``None`` (with a warning) when the call cannot be keyed and runs uncached."""
        try:
            return self.template(ns, name, instance, args, kwargs)
        except UnkeyableArgument as exc:
            if exc.parameter not in self._unkeyable_warned:  # once per parameter, not once per request
                self._unkeyable_warned.add(exc.parameter)
                warnings.warn(f"{self.what}: {exc}", UncacheableValueWarning, stacklevel=stacklevel)
            return None
        except ConfigurationError:
            raise  # a mistake in the code (a reserved resource name, an action without a resolver)
        except Exception as exc:  # arguments that cannot be keyed, a key resolver that raises: run uncached
            warnings.warn(f"{self.what}: cannot key this call ({type(exc).__name__}: {exc}); called uncached",
                          UncacheableValueWarning, stacklevel=stacklevel)
            return None

    def template(
        self, ns: Cache, name: str, instance: Any, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> KeyTemplate:
        """The generation-free key of a call, with the scopes it depends on."""
        params = keyed_params(self, instance, args, kwargs)
        if self.id_param != "id" and self.id_param in params:
            params["id"] = params.pop(self.id_param)
        spec = self.resolver(name, self.action, params)
        variant = self.key_variant()
        if variant is not None:  # the schema and version= travel in the key: another one never reads it
            spec = dataclasses.replace(spec, params={**spec.params, "~variant": variant})
        partitions = getattr(instance, "partitions", None) if instance is not None else None
        if isinstance(partitions, Mapping):
            ns.declare_partitions(name, partitions)
        try:
            return ns.key_template(spec)
        except SerializationError as exc:
            raise unkeyable_argument(self, params, exc) from exc

    def key_variant(self) -> str | None:
        """The part of the key that is neither the resource, the action nor the arguments: the schema
        fingerprint of a typed return (:mod:`cachekit._typed_returns`) and ``version=``; ``None`` when neither."""
        schema = self.typed.key_variant() if self.typed is not None else None
        if self.version is None:
            return schema
        return f"{schema or ''}/v={self.version}"

    def compute_key(self, ns: Cache, name: str, instance: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        return ns._gens.render(self.template(ns, name, instance, args, kwargs))[0]

    def invalidate(self, ns: Cache, name: str, instance: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
        """Invalidate a call's entry in every process; return whether this process's store had one.

        Bumps the narrowest scope the call's key depends on (the item's for ``get(id)``, else the value's of a
        partition read, else the resource's aggregates), as a write would: other processes' memory tiers hear of
        it like any write. Deleting the one key, as this did before, reached no other process (issue 23, item 8).
        """
        template = self.template(ns, name, instance, args, kwargs)
        found = ns.delete(ns._gens.render(template)[0])
        ns._bump([template.scopes[-1]])
        return found

    # -- calls -----------------------------------------------------------------------------------------------

    def __call__(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The wrapt wrapper: functions, methods looked up on their class, classmethods, staticmethods, and the
        plugin's wrappers of bound methods. A plain method looked up on an instance takes the lean binding
        (:mod:`cachekit._binding`).
        """
        ns = self.namespace
        if ns is None:
            ns = getattr(instance, "cache", None)
            if type(ns) is not Cache:
                ns = cache_of(instance, None, self.what)
        name = self.resource or resource_name(instance, self.fallback_name)
        # No entry is ever stored under None. One lookup per branch: a plain call pays nothing for the packed memo.
        if args:
            slot = memo_key(self, name, args, kwargs)
            entry = ns._key_memo.get(slot)
        elif kwargs:  # keyword-only calls (the plugin's reads, partitioned or not): memo_key's packing, inline
            try:
                slot = pack(kwargs)  # its size is checked before it is stored (storable)
            except (TypeError, ValueError, OverflowError):
                slot = memo_key(self, name, args, kwargs)
                entry = ns._key_memo.get(slot)
            else:  # the bytes alone in this state's own memo (namespace and resource fixed), else the tuple
                if self.packed_memo is None:
                    slot = (self, name, slot)
                    entry = ns._key_memo.get(slot)
                else:
                    entry = self.packed_memo.get(slot)
        else:
            slot = (self, name)
            entry = ns._key_memo.get(slot)
        key: str | None
        if entry is not None and entry[1] == entry[2].epoch:
            # Never a skip_cache call (the slot of one is never stored, the check below), nor an action the
            # namespace disables (memo_lookup stores no slot of one).
            key = entry[0]
        else:
            if ns.disabled_actions and self.action in ns.disabled_actions:
                if "skip_cache" in kwargs and kwargs.pop("skip_cache"):
                    return wrapped(*args, **skip_inner(wrapped, kwargs))
                return wrapped(*args, **kwargs)
            if "skip_cache" in kwargs:
                if kwargs.pop("skip_cache"):
                    return wrapped(*args, **skip_inner(wrapped, kwargs))
                return self(wrapped, instance, args, kwargs)  # skip_cache=False: the call without it
            memo = self.packed_memo if type(slot) is bytes else None  # a bare bytes slot: the state's own memo
            key = self.memo_lookup(ns, name, instance, args, kwargs, slot, memo)
            if key is None:
                return wrapped(*args, **kwargs)
        read = ns._read  # an attribute, not a method: LOAD_METHOD would take its slow path (~120 instructions)
        value = read(key)
        typed = self.typed
        if typed is not None:  # a typed return (cachekit._typed_returns): decode the hit, store the typed form
            if value is not MISSING:
                value = typed.hit(ns, key, value)
                if value is not MISSING:
                    return value
            return typed.load(ns, key, self.action, functools.partial(wrapped, *args, **kwargs), self.ttl)
        if value is not MISSING:
            return value
        return ns._load(key, self.action, functools.partial(wrapped, *args, **kwargs), self.ttl)

    async def acall(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs and "skip_cache" in kwargs and kwargs.pop("skip_cache"):
            return await wrapped(*args, **skip_inner(wrapped, kwargs))
        ns = self.namespace or cache_of(instance, None, self.what)
        if self.action in ns.disabled_actions:
            return await wrapped(*args, **kwargs)
        key = await self.akey(ns, instance, args, kwargs)
        if key is None:
            return await wrapped(*args, **kwargs)
        # A blocking driver must not stall the event loop: its async twins (native for Redis, else cachekit's executor).
        value = await ns._aread(key) if ns.driver.blocking else ns._read(key)
        typed = self.typed
        if typed is not None:  # a typed return (cachekit._typed_returns)
            if value is not MISSING:
                value = await typed.ahit(ns, key, value)
                if value is not MISSING:
                    return value
            return await typed.aload(ns, key, self.action, functools.partial(wrapped, *args, **kwargs), self.ttl)
        if value is not MISSING:
            return value
        return await ns._aload(key, self.action, functools.partial(wrapped, *args, **kwargs), self.ttl)

    # -- freshness policies (issue 21, cachekit._freshness): a slower, generic path of their own --------------------

    def _namespace(self, instance: Any) -> Cache:
        ns = self.namespace
        if ns is None:
            ns = getattr(instance, "cache", None)
            if type(ns) is not Cache:
                ns = cache_of(instance, None, self.what)
        return ns

    def fresh_wrapper(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The wrapt wrapper of a callable with freshness policies of its own."""
        ns = self._namespace(instance)
        if self.action in ns.disabled_actions:
            return self(wrapped, instance, args, kwargs)
        return self.fresh_call(ns, wrapped, instance, args, kwargs)

    async def afresh_wrapper(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """:meth:`fresh_wrapper` of an ``async def``."""
        ns = self.namespace or cache_of(instance, None, self.what)
        if self.action in ns.disabled_actions:
            return await self.acall(wrapped, instance, args, kwargs)
        return await self.fresh_acall(ns, wrapped, instance, args, kwargs)

    def fresh_call(self, ns: Cache, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A read with freshness policies of its own: keyed and read as any read, then after a miss
        :meth:`FreshState.after_miss <cachekit._freshness.FreshState.after_miss>`."""
        if "skip_cache" in kwargs and kwargs.pop("skip_cache"):
            return wrapped(*args, **skip_inner(wrapped, kwargs))
        key = self.key(ns, instance, args, kwargs)
        if key is None:
            return wrapped(*args, **kwargs)
        name, fresh = self.resource or resource_name(instance, self.fallback_name), self.freshness
        assert fresh is not None  # the wrapper of a callable with policies of its own
        return ns._fresh.read(key, name, self.action, fresh, wrapped, args, kwargs, self.ttl)

    async def fresh_acall(
        self, ns: Cache, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """:meth:`fresh_call` of an ``async def``: background refreshes are tasks on the running loop."""
        if "skip_cache" in kwargs and kwargs.pop("skip_cache"):
            return await wrapped(*args, **skip_inner(wrapped, kwargs))
        key = await self.akey(ns, instance, args, kwargs)
        if key is None:
            return await wrapped(*args, **kwargs)
        name = self.resource or resource_name(instance, self.fallback_name)
        loader, fresh = functools.partial(wrapped, *args, **kwargs), self.freshness
        assert fresh is not None  # the wrapper of a callable with policies of its own
        return await ns._fresh.aread(key, name, self.action, fresh, loader, self.ttl)

    async def arefresh(self, ns: Cache, key: str, pending: Awaitable[Any]) -> Any:
        """:meth:`refresh` of an ``async def``: its result stored (off the event loop for a blocking driver)."""
        return await run_blocking(ns.driver, self.refresh, ns, key, await pending)

    def refresh(self, ns: Cache, key: str, value: Any) -> Any:
        """Store ``value`` under ``key`` whatever the policies say (under the freshness policies in force as a
        load stores it), and return it."""
        fresh = self.freshness_in(ns)
        if fresh is not None:  # the value and its record, as a load under the policies stores them
            ns._fresh.store(key, self.action, value, 0.0, self.ttl, fresh, force=True)
            return value
        ttl = self.ttl if self.ttl is not DEFAULT else ns.policy(self.action).ttl
        stored = value if self.typed is None else self.typed.refresh_value(ns, value)
        if stored is not MISSING:
            ns._write(key, stored, ns.ttl if ttl is DEFAULT else ttl, None)
        return value


def skip_inner(wrapped: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pass ``skip_cache`` on when the wrapped callable is itself cached (stacked plugin instances)."""
    if isinstance(wrapped, CachedCallable):
        kwargs["skip_cache"] = True
    return kwargs


def split_instance(instance: Any, binding: str, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...], bool]:
    """Through the class (``Repo.get.cache_key(repo, 1)``) the instance is the first argument."""
    if instance is None and binding == "function" and args:
        return args[0], args[1:], True
    return instance, args, False


def _remember(memo: dict[Any, Any], slot: Any, key: str, epoch: int, template: KeyTemplate) -> None:
    """Keep a rendered key in its memo slot (bounded: the memo is emptied when full)."""
    if slot is not None and storable(slot):
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[slot] = (key, epoch, template.cell, template)
