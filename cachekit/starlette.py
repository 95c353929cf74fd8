"""Response caching for Starlette and FastAPI routes, invalidated by the generations of ``@invalidates``.

A route marked with :func:`cached_route` stores its *rendered* response (status, headers, body bytes: FastAPI has
already turned a Pydantic model into JSON) under a key made the way ``@cached`` makes a read's key: the resource,
the action, the id from a path parameter, and a hash of the method, path, query and the request headers listed in
``vary``. The key ends with the generations of the read's scopes (:mod:`cachekit.scopes`), so a write to
``users`` through ``@invalidates`` or ``cache.invalidate(Invalidation("users", ids=[7]))`` makes ``/users/7``
(``action="get"``) and ``/users`` (``action="list"``) fresh, in every process sharing the backend.

E.g.::

    from fastapi import FastAPI
    from cachekit import Cache
    from cachekit.starlette import CachedAPIRoute, cached_route

    cache = Cache(driver="redis", config={"url": "redis://127.0.0.1:6379/0"}, namespace="api")
    app = FastAPI()
    app.router.route_class = CachedAPIRoute          # before the routes; or APIRouter(route_class=...)

    @app.get("/users/{user_id}")
    @cached_route(cache, resource="users", action="get", id_param="user_id", vary=("accept-language",))
    async def get_user(user_id: int) -> User: ...

For Starlette, ``CachedRoute("/users/{user_id}", get_user)`` in place of ``Route``.

What it does with a GET (a HEAD is answered from the GET's entry, never stored):

* a hit is answered without calling the endpoint (nor its dependencies); a request whose ``If-None-Match``
  names the entry's ETag gets ``304 Not Modified``;
* a miss calls the endpoint and stores the response when its status is 2xx (not 206; ``cache_statuses=`` to
  choose), it has no ``Set-Cookie`` (``cache_set_cookie=True`` to store it), its ``Cache-Control`` says neither
  ``no-store`` nor ``private``, and it has a body (a streaming or file response is passed through);
* stored responses get an ``ETag`` (a weak hash of the body, unless the endpoint set one), a ``Cache-Control``
  (``cache_control=``, default ``no-cache``: clients may keep it but revalidate, cheaply, with the ETag), and a
  ``Vary`` naming the ``vary`` headers;
* a request with an ``Authorization`` header is passed through, uncached, unless ``"authorization"`` is in
  ``vary`` (its response is probably someone's own);
* the cache never fails a request: a key that cannot be built, a backend that is down, or an entry that does not
  parse (stored bytes are untrusted) means the endpoint is called.

On an event loop nothing blocks: reads and stores go through the driver's async twins (``redis.asyncio``, the
memory driver inline, cachekit's thread pool for the filesystem and S3), and a key whose generations are not
known locally is rendered on that pool. The key is rendered *before* the endpoint runs, so a response computed
while a write commits lands under generations that no later request uses.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._executor import run_blocking
from ._route_cache import ATTRIBUTE, RouteCache, route_cache_of
from ._types import DEFAULT, TTL
from .cache import Cache
from .errors import ConfigurationError
from .scopes import Invalidation

if TYPE_CHECKING:
    from ._fastapi_route import CachedAPIRoute

__all__ = ["CachedAPIRoute", "CachedRoute", "RouteCache", "ainvalidate", "cached_route", "route_cache_of"]

F = TypeVar("F", bound=Callable[..., Any])


# -- the public API ----------------------------------------------------------------------------------------------


def cached_route(
    cache: Cache,
    *,
    resource: str,
    action: str = "get",
    id_param: str | None = None,
    vary: Sequence[str] = (),
    ttl: TTL = DEFAULT,
    cache_control: str | None = "no-cache",
    cache_statuses: Collection[int] | None = None,
    cache_set_cookie: bool = False,
) -> Callable[[F], F]:
    """Cache the responses of a Starlette or FastAPI endpoint; invalidated by writes to ``resource``.

    The endpoint is returned unchanged, marked; :class:`CachedRoute` (Starlette) or :class:`CachedAPIRoute`
    (FastAPI, as the router's ``route_class``) does the caching. Put this decorator *below* FastAPI's ``@app.get``.

    E.g.::

        @app.get("/users/{user_id}")
        @cached_route(cache, resource="users", action="get", id_param="user_id", vary=("accept-language",))
        async def get_user(user_id: int, session: AsyncSession = Depends(get_session)) -> User: ...

    :param cache: the :class:`~cachekit.Cache` (namespace) responses are stored in; writes to its resources
        invalidate them.
    :param resource: the resource the response shows (``"users"``).
    :param action: ``"get"`` (one item: give ``id_param``; a write to that id, or a whole-resource
        invalidation, makes it fresh) or an aggregate such as ``"list"`` (every write to the resource does).
    :param id_param: the path parameter holding the item's id (``"user_id"`` for ``/users/{user_id}``).
    :param vary: request headers whose values are part of the key (``("accept-language",)``); they are added to
        the response's ``Vary``. Everything else in the headers is ignored, so list every header the response
        depends on.
    :param ttl: seconds (or a ``timedelta``) an entry lives; by default the cache's policy for ``action``, else
        its TTL.
    :param cache_control: the ``Cache-Control`` given to stored responses that have none (``None``: none).
    :param cache_statuses: the statuses to store (default: 2xx except 206).
    :param cache_set_cookie: store responses with ``Set-Cookie`` too (the cookie is then replayed to everyone).
    :raises ConfigurationError: an option is wrong (at decoration time).
    """
    policy = RouteCache(
        cache,
        resource=resource,
        action=action,
        id_param=id_param,
        vary=vary,
        ttl=ttl,
        cache_control=cache_control,
        cache_statuses=cache_statuses,
        cache_set_cookie=cache_set_cookie,
    )

    def mark(endpoint: F) -> F:
        if not callable(endpoint):
            raise ConfigurationError(f"@cached_route decorates an endpoint function; got {endpoint!r}")
        setattr(endpoint, ATTRIBUTE, policy)
        return endpoint

    return mark


class CachedRoute(Route):
    """A Starlette ``Route`` that caches its endpoint's responses when the endpoint is marked by :func:`cached_route`.

    E.g.::

        app = Starlette(routes=[CachedRoute("/users/{user_id:int}", get_user)])

    An unmarked endpoint makes a plain ``Route``; a marked one must be a function (or method) of the request.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        policy = route_cache_of(endpoint)
        target = endpoint
        while isinstance(target, functools.partial):
            target = target.func
        if policy is None:
            super().__init__(path, endpoint, **options)
            return
        if not (inspect.isfunction(target) or inspect.ismethod(target)):
            raise ConfigurationError(
                f"cached_route marks request -> response functions; {endpoint!r} on {path!r} is an ASGI app or an "
                "HTTPEndpoint class: cache the function instead"
            )

        async def call(request: Request) -> Response:
            if inspect.iscoroutinefunction(target):
                response: Response = await endpoint(request)
            else:
                response = await run_in_threadpool(endpoint, request)
            return response

        handler = functools.wraps(endpoint)(policy.wrap(call))
        super().__init__(path, handler, **options)
        policy.check_route(path, self.param_convertors)
        self.endpoint = endpoint


async def ainvalidate(cache: Cache, invalidation: Invalidation) -> int:
    """``cache.invalidate(invalidation)`` from a coroutine: on cachekit's thread pool when the driver blocks.

    E.g.::

        await session.commit()
        await ainvalidate(cache, Invalidation("users", ids=[user_id]))
    """
    return await run_blocking(cache.driver, cache.invalidate, invalidation)


def __getattr__(name: str) -> Any:
    if name == "CachedAPIRoute":  # imports FastAPI: only when asked for
        from ._fastapi_route import CachedAPIRoute

        return CachedAPIRoute
    raise AttributeError(f"module 'cachekit.starlette' has no attribute {name!r}")
