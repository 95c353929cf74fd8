"""``@invalidates``: what a decorated write changes, invalidated after it runs (also when it raises)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, Union, cast

import wrapt

from ._calls import cache_of, chosen_cache, resource_name, signatures
from ._executor import run_blocking
from ._types import MISSING
from .cache import Cache
from .errors import ConfigurationError
from .keys import stable_hash
from .scopes import Invalidation

__all__ = ["invalidates"]

F = TypeVar("F", bound=Callable[..., Any])


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
        self.free, self.bound = signatures(fn)
        self.what = f"@invalidates {self.fallback_name}()"

    def __call__(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ns = self.namespace or cache_of(instance, None, self.what)
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
            name = self.resource or resource_name(instance, self.fallback_name)
            return Invalidation(name, whole=True)
        return invalidation

    async def acall(self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        ns = self.namespace or cache_of(instance, None, self.what)
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
        name = self.resource or resource_name(instance, self.fallback_name)
        partitions = self.partitions if self.partitions is not None else getattr(instance, "partitions", None)
        if not isinstance(partitions, Mapping):
            ns = self.namespace or cache_of(instance, None, self.what)
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


#: What ``before=`` takes. The fixed arities let a type checker give a lambda's parameters a type (``Any``):
#: with ``Callable[..., Any]`` alone, pyright's strict mode found every parameter and its use unknown (7 errors
#: for the README's ``lambda self, id, data: self.get.uncached(id)``). The factory runs before the method exists,
#: so a lambda cannot be typed from it; a ``def`` passed here keeps its own annotations.
BeforeHook = Union[
    Callable[[Any], object],
    Callable[[Any, Any], object],
    Callable[[Any, Any, Any], object],
    Callable[[Any, Any, Any, Any], object],
    Callable[[Any, Any, Any, Any, Any], object],
    Callable[..., object],
]


def invalidates(
    action: str = "update",
    *,
    cache: Cache | None = None,
    resource: str | None = None,
    partitions: Mapping[str, Sequence[str]] | None = None,
    before: BeforeHook | None = None,
    namespace: Cache | None = None,
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
    :param cache: the :class:`Cache`; by default the instance's ``cache`` attribute.
    :param resource: the resource name; by default the instance's ``name`` or its class name.
    :param partitions: ``{"by_region": ["region"]}``; by default the instance's ``partitions`` attribute.
    :param before: called with the write's arguments before it runs; returns the old record(s) (or ``None``).
    :param namespace: the older spelling of ``cache=``.
    """
    if not isinstance(action, str) or not action:
        raise ConfigurationError(f"invalidates(action) takes the write's name such as 'update'; got {action!r}")
    given = chosen_cache(cache, namespace, "invalidates")

    def decorate(fn: F) -> F:
        if given is not None and resource and partitions is not None:
            given.declare_partitions(resource, partitions)  # so reads of these partitions scope precisely
        state = _InvalidatesState(fn, action, given, resource, partitions, before)
        target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
        wrapper = state.acall if inspect.iscoroutinefunction(target) else state
        return cast(F, wrapt.FunctionWrapper(fn, wrapper))

    return decorate
