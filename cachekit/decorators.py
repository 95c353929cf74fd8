"""``@cached`` and ``@invalidates``: read-through caching and write invalidation for functions and methods.

Both are built on wrapt, so they work on functions, methods, classmethods (put the decorator outermost, above
``@classmethod``), staticmethods and ``async def``, keep the signature and ``__wrapped__``, and read the
resource from the bound instance: ``self`` never enters a key.

Every ``@cached`` callable carries ``.cache_key(...)``, ``.uncached(...)``, ``.invalidate(...)`` and
``.refresh(...)``, with the same arguments as the call, also through an instance (``repo.get.cache_key(1)``).

The parts: :mod:`cachekit._cached_state` (keys, reads and loads of a call), :mod:`cachekit._binding` (the
wrappers and the lean hit path of methods), :mod:`cachekit._invalidates` (writes), :mod:`cachekit._calls`
(arguments, resource and namespace of a call).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, TypeVar, cast

from ._binding import cached_function
from ._cached_protocols import CachedDecorator
from ._cached_state import CachedState
from ._calls import chosen_cache
from ._freshness import check_freshness
from ._invalidates import invalidates
from ._key_options import check_ignore
from ._types import DEFAULT, TTL, normalize_ttl
from .cache import Cache
from .errors import ConfigurationError
from .keys import item_actions, mark_in_use, register_key_resolver, registered_actions

__all__ = ["cached", "invalidates"]

F = TypeVar("F", bound=Callable[..., Any])


def cached(
    action: str | None = None,
    *,
    cache: Cache | None = None,
    resource: str | None = None,
    ttl: TTL = DEFAULT,
    id_param: str | None = None,
    version: str | None = None,
    ignore: Iterable[str] = (),
    stale_while_revalidate: float | timedelta = 0.0,
    stale_if_error: float | timedelta = 0.0,
    early_refresh: bool = False,
    early_refresh_beta: float = 1.0,
    namespace: Cache | None = None,
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
    (:class:`cachekit._cached_protocols.CachedMethod`); see docs/architecture.md, "Typing of the decorators".

    :param action: the key resolver to use (``"get"``, ``"list"``, ``"count"`` ...); defaults to the function's
        name. An action without a resolver is registered as one whose every argument counts.
    :param cache: the :class:`Cache` to use; by default the instance's (or class's) ``cache`` attribute.
    :param resource: the resource name in keys; by default the instance's ``name`` or its class name.
    :param ttl: overrides the namespace's TTL (and its method policy) for this method.
    :param id_param: for one-item actions (``get``, ``exists`` ...), the parameter that holds the item id
        (default ``"id"``): writes to that id invalidate the entry. Never a position: ``get(email=...)`` on
        ``def get(self, id=None, *, email=None)`` is keyed by the email and invalidated by any write.
    :param version: a version of this function's results, part of its keys: entries written under another
        version are never read (at once, with no scan). Change it when a deploy changes what the function
        returns; see also ``Cache(version=...)``.
    :param ignore: parameters left out of the key (``ignore=("session", "request")``): arguments that do not
        change the result and cannot be hashed. A name that is not a parameter is refused here.
    :param namespace: the older spelling of ``cache=`` (a :class:`Cache`, not a name: a namespace's name is
        ``Cache(namespace="...")``).

    :param stale_while_revalidate: for this many seconds after ``ttl``, a read returns the expired value at once
        while one background refresh reloads it (a bounded pool of cachekit's own; a task on the running loop
        for ``async def``). Never a value a write invalidated: see docs/architecture.md, "Freshness policies".
    :param stale_if_error: for this many seconds after ``ttl``, a source that raises gives the expired value
        instead (the error is logged once and counted).
    :param early_refresh: refresh a hit before it expires with the XFetch probability, from the measured load
        time; ``early_refresh_beta`` (> 0, default 1.0) makes it earlier (larger) or later (smaller).
        These four override the namespace's ``method_policies`` for this function when any is set.

    A return annotation naming a dataclass, Pydantic model, attrs class, enum, ``NamedTuple``, ``TypedDict`` or
    msgspec ``Struct`` (or containers and unions of them) makes hits return that type: see
    :mod:`cachekit._typed_returns` and the README.
    """
    if action is not None and not isinstance(action, str):
        raise ConfigurationError(
            f"cached(action=...) takes the action name; got {action!r}. Write @cached() or @cached(action='get')"
        )
    given = chosen_cache(cache, namespace, "cached")
    if id_param is not None and (not isinstance(id_param, str) or not id_param.isidentifier()):
        raise ConfigurationError(f"id_param must be a parameter name such as 'email'; got {id_param!r}")
    seconds = ttl if ttl is DEFAULT else normalize_ttl(ttl)
    freshness = check_freshness("cached(...)", {
        "stale_while_revalidate": stale_while_revalidate, "stale_if_error": stale_if_error,
        "early_refresh": early_refresh, "early_refresh_beta": early_refresh_beta,
    })
    if version is not None and (not isinstance(version, str) or not version):
        raise ConfigurationError(f"version must be a non-empty string such as '2'; got {version!r}")

    def decorate(fn: F) -> F:
        name: str = action or getattr(fn, "__name__", "") or "call"
        if name not in registered_actions():
            register_key_resolver(name)
        mark_in_use(name)
        chosen = _check_id_param(fn, name, id_param)
        ignored = check_ignore(fn, ignore)
        state = CachedState(fn, name, given, resource, seconds, chosen, version=version, ignore=ignored,
                            freshness=freshness)
        target = fn.__func__ if isinstance(fn, (classmethod, staticmethod)) else fn
        return cast(F, cached_function(fn, state, inspect.iscoroutinefunction(target)))

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
