"""FastAPI's half of :mod:`cachekit.starlette`: an ``APIRoute`` that caches the endpoints :func:`cached_route` marked.

Kept apart so that Starlette applications never import FastAPI; ``cachekit.starlette.CachedAPIRoute`` loads it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from ._route_cache import route_cache_of

__all__ = ["CachedAPIRoute"]


class CachedAPIRoute(APIRoute):
    """A FastAPI route whose handler caches the rendered response when its endpoint is marked by ``cached_route``.

    Use it as the router's route class, before the routes are declared::

        app = FastAPI()
        app.router.route_class = CachedAPIRoute
        router = APIRouter(route_class=CachedAPIRoute)

    The cache sits in front of FastAPI's whole handler: on a hit neither the dependencies nor the endpoint run;
    on a miss it stores what FastAPI rendered (the response model's JSON, headers set through a ``Response``
    parameter). Unmarked endpoints behave as with ``APIRoute``.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, with the endpoint's :class:`~cachekit.starlette.RouteCache` in front of it."""
        handler = super().get_route_handler()
        policy = route_cache_of(self.endpoint)
        if policy is None:
            return handler
        policy.check_route(self.path, self.param_convertors)
        return policy.wrap(handler)  # type: ignore[return-value]
