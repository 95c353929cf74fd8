"""The response cache of one route (:class:`RouteCache`), shared by :mod:`cachekit.starlette` and FastAPI's route.

See :mod:`cachekit.starlette` for what it does.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ._executor import run_blocking
from ._types import DEFAULT, MISSING, TTL, normalize_ttl
from .cache import Cache
from .errors import ConfigurationError, CorruptEntryError
from .generations.view import KeyTemplate
from .keys import get_key_resolver, item_actions, mark_in_use

__all__ = ["ATTRIBUTE", "RouteCache", "route_cache_of"]

logger = logging.getLogger("cachekit")

Handler = Callable[[Request], Awaitable[Response]]

#: The attribute :func:`~cachekit.starlette.cached_route` sets on an endpoint.
ATTRIBUTE = "__cachekit_route__"
_VERSION = 1
_NOT_STORED = frozenset({b"content-length", b"set-cookie", b"connection", b"transfer-encoding", b"date",
                         b"keep-alive", b"server"})
_KEPT_ON_304 = (b"etag", b"cache-control", b"vary", b"content-location", b"expires")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_ETAG = re.compile(r'(W/)?"[\x21\x23-\x7e\x80-\xff]*"')
_MAX_HEADERS = 256
_MEMO_LIMIT = 4096
_MEMO_SLOT_BYTES = 2048


@dataclass(frozen=True, slots=True)
class _Stored:
    """A response read back from the cache, after checking every field."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: str


class RouteCache:
    """The caching of one route: built by :func:`cached_route`, applied by :class:`CachedRoute` /
    :class:`CachedAPIRoute` through :meth:`wrap`. See the module docstring for what it does.
    """

    def __init__(
        self,
        cache: Cache,
        *,
        resource: str,
        action: str,
        id_param: str | None,
        vary: Sequence[str],
        ttl: TTL,
        cache_control: str | None,
        cache_statuses: Collection[int] | None,
        cache_set_cookie: bool,
    ) -> None:
        if not isinstance(cache, Cache):
            raise ConfigurationError(f"cached_route(cache) takes a cachekit.Cache; got {cache!r}")
        if not isinstance(resource, str) or not resource or "/" in resource:
            raise ConfigurationError(f"resource must be a non-empty name without '/' such as 'users'; got {resource!r}")
        self.resolver = get_key_resolver(action)  # KeyResolverError names the registered actions
        is_item = action in item_actions()
        if is_item and not id_param:
            raise ConfigurationError(
                f"action {action!r} reads one item: give id_param=, the path parameter holding its id "
                "(cached_route(cache, resource=..., action='get', id_param='user_id'))"
            )
        if id_param and not is_item:
            raise ConfigurationError(
                f"id_param={id_param!r} needs a one-item action such as 'get'; {action!r} reads many items and is "
                "invalidated by every write to the resource"
            )
        if isinstance(vary, (str, bytes)) or not all(isinstance(h, str) and h.strip() for h in vary):
            raise ConfigurationError(f"vary must be a tuple of request header names; got {vary!r}")
        statuses = None if cache_statuses is None else frozenset(cache_statuses)
        if statuses is not None and not all(isinstance(s, int) and 200 <= s <= 599 and s != 304 for s in statuses):
            raise ConfigurationError(f"cache_statuses must be HTTP statuses from 200 to 599, not 304; got {statuses!r}")
        if cache_control is not None and (not isinstance(cache_control, str) or "\n" in cache_control):
            raise ConfigurationError(f"cache_control must be a header value such as 'no-cache'; got {cache_control!r}")
        mark_in_use(action)
        self.cache = cache
        self.resource = resource
        self.action = action
        self.id_param = id_param
        self.vary = tuple(dict.fromkeys(h.strip().lower() for h in vary))
        self.ttl = ttl if ttl is DEFAULT else normalize_ttl(ttl)
        self.cache_control = cache_control
        self.statuses = statuses
        self.cache_set_cookie = bool(cache_set_cookie)
        self._vary_header = ", ".join(self.vary).encode("latin-1")
        self._templates: dict[tuple[Any, ...], KeyTemplate] = {}

    def __repr__(self) -> str:
        return f"<RouteCache resource={self.resource!r} action={self.action!r} namespace={self.cache.namespace!r}>"

    def check_route(self, path: str, parameters: Collection[str]) -> None:
        """Refuse a route whose path lacks ``id_param`` (called when the route is built, not at its first request).

        :raises ConfigurationError: ``id_param`` is not one of ``parameters``, the path's parameters.
        """
        if self.id_param and self.id_param not in parameters:
            raise ConfigurationError(
                f"cached_route(id_param={self.id_param!r}) on {path!r}: the path has no such parameter "
                f"(it has {sorted(parameters)}); name the path parameter holding the item's id"
            )

    # -- the handler ---------------------------------------------------------------------------------------------

    def wrap(self, handler: Handler) -> Handler:
        """``handler`` (a request -> response coroutine function) with this route's caching in front."""

        @functools.wraps(handler)
        async def cached_handler(request: Request) -> Response:
            method = request.method
            if method not in ("GET", "HEAD") or self.action in self.cache.disabled_actions:
                return await handler(request)
            if "authorization" not in self.vary and "authorization" in request.headers:
                return await handler(request)
            key = await self._key(request)
            if key is None:
                return await handler(request)
            stored = await self._read(key)
            if stored is not None:
                return self._answer(request, stored)
            response = await handler(request)
            if method == "GET":
                etag = await self._store(key, response)
                if etag is not None and _matches(request, etag):
                    return _not_modified(response.raw_headers, response.background)
            return response

        return cached_handler

    def key(self, request: Request) -> str:
        """The key ``request`` is cached under now (sync: it may read generations from the backend)."""
        return self.cache._gens.render(self._template(request))[0]

    async def _key(self, request: Request) -> str | None:
        cache = self.cache
        try:
            template = self._template(request)
            key = cache._gens.render_local(template)
            if key is None:  # a generation must come from the backend: not on the event loop
                key = (await run_blocking(cache.driver, cache._gens.render, template))[0]
        except Exception as exc:
            cache._backend_failed(None, exc)
            return None
        return key

    def _template(self, request: Request) -> KeyTemplate:
        """The generation-free key of ``request``, memoized by path, query string and ``vary`` values."""
        scope = request.scope
        path, query = scope["path"], scope.get("query_string", b"")
        headers = request.headers
        slot = (path, query, *(",".join(headers.getlist(name)) for name in self.vary))
        template = self._templates.get(slot)
        if template is None:
            template = self._build_template(request, path, slot[2:])
            if len(query) + sum(map(len, slot[2:])) <= _MEMO_SLOT_BYTES:  # bounded: 4096 slots of at most 2 KiB
                if len(self._templates) >= _MEMO_LIMIT:
                    self._templates.clear()
                self._templates[slot] = template
        return template

    def _build_template(self, request: Request, path: str, vary_values: Sequence[str]) -> KeyTemplate:
        params: dict[str, Any] = {
            "~http": [
                "GET",
                path,
                sorted(request.query_params.multi_items(), key=lambda item: item[0]),
                [[name, value] for name, value in zip(self.vary, vary_values, strict=True)],
            ]
        }
        if self.id_param:
            path_params = request.path_params
            if self.id_param not in path_params:
                raise ConfigurationError(
                    f"the route of {self!r} has no path parameter {self.id_param!r} (it has {sorted(path_params)})"
                )
            params["id"] = path_params[self.id_param]
        return self.cache.key_template(self.resolver(self.resource, self.action, params))

    async def _read(self, key: str) -> _Stored | None:
        cache = self.cache
        value = await cache._aread(key) if cache.driver.blocking else cache._read(key)
        if value is MISSING:
            return None
        stored = _parse(value)
        if stored is None:
            problem = CorruptEntryError(f"{key!r} does not hold a response cached by cachekit.starlette")
            cache._backend_failed(key, problem)
            try:
                await cache.driver.adelete(key)
            except Exception as exc:
                logger.debug("cachekit: could not drop %r: %s", key, exc)
        return stored

    def _answer(self, request: Request, stored: _Stored) -> Response:
        if _matches(request, stored.etag):
            return _not_modified(stored.headers, None)
        response = Response(stored.body, status_code=stored.status)
        response.raw_headers = [*stored.headers, (b"content-length", str(len(stored.body)).encode("ascii"))]
        return response

    async def _store(self, key: str, response: Response) -> str | None:
        """Add the caching headers to a storable ``response`` and store it; its ETag, or None when not stored."""
        cache = self.cache
        try:
            headers = self._storable_headers(response)
            if headers is None:
                return None
            etag = next((v.decode("latin-1") for k, v in headers if k == b"etag"), None)
            if etag is None or not _ETAG.fullmatch(etag):
                etag = 'W/"' + hashlib.blake2b(bytes(response.body), digest_size=16).hexdigest() + '"'
                headers = [(k, v) for k, v in headers if k != b"etag"]
                headers.append((b"etag", etag.encode("latin-1")))
                response.headers["etag"] = etag
            if self.cache_control and not any(k == b"cache-control" for k, _ in headers):
                headers.append((b"cache-control", self.cache_control.encode("latin-1")))
                response.headers["cache-control"] = self.cache_control
            if self.vary:
                vary = _merged_vary(response.headers.get("vary"), self._vary_header)
                headers = [(k, v) for k, v in headers if k != b"vary"]
                headers.append((b"vary", vary))
                response.headers["vary"] = vary.decode("latin-1")
            value = {"v": _VERSION, "s": response.status_code, "h": [[k, v] for k, v in headers],
                     "b": bytes(response.body), "e": etag}
            plan = cache._store_plan(key, self.action, value, self.ttl)
            if plan is not None:
                if cache.driver.supports_async:
                    await cache._astore(key, value, *plan)
                else:
                    await run_blocking(cache.driver, cache._write, key, value, *plan)
        except Exception as exc:
            cache._backend_failed(key, exc)
            return None
        return etag

    def _storable_headers(self, response: Response) -> list[tuple[bytes, bytes]] | None:
        """The headers to store, or None when ``response`` must not be stored."""
        status = response.status_code
        if self.statuses is not None:
            if status not in self.statuses:
                return None
        elif not 200 <= status < 300 or status == 206:
            return None
        if not isinstance(getattr(response, "body", None), (bytes, memoryview)):
            return None  # streaming, file: no body to keep
        kept = []
        for name, value in response.raw_headers:
            lowered = name.lower()
            if lowered == b"set-cookie" and not self.cache_set_cookie:
                return None
            if lowered == b"cache-control" and re.search(rb"(?i)\b(no-store|private)\b", value):
                return None
            if lowered not in _NOT_STORED or (lowered == b"set-cookie" and self.cache_set_cookie):
                kept.append((lowered, value))
        return kept


def _merged_vary(current: str | None, ours: bytes) -> bytes:
    names = [n.strip() for n in (current or "").split(",") if n.strip()]
    seen = {n.lower() for n in names}
    names += [n for n in ours.decode("latin-1").split(", ") if n.lower() not in seen]
    return ", ".join(names).encode("latin-1")


def _matches(request: Request, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks for GET and HEAD)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    ours = etag.removeprefix("W/")
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == ours:
            return True
    return False


def _not_modified(headers: Sequence[tuple[bytes, bytes]], background: Any) -> Response:
    response = Response(status_code=304, background=background)
    response.raw_headers = [(k, v) for k, v in headers if k.lower() in _KEPT_ON_304]
    return response


def _parse(value: Any) -> _Stored | None:
    """A stored response, or None when ``value`` is not one this module wrote (stored bytes are untrusted)."""
    if not isinstance(value, Mapping) or value.get("v") != _VERSION:
        return None
    status, raw_headers, body, etag = value.get("s"), value.get("h"), value.get("b"), value.get("e")
    if type(status) is not int or not 200 <= status <= 599 or status == 304:
        return None
    if not isinstance(body, bytes) or not isinstance(etag, str) or not _ETAG.fullmatch(etag):
        return None
    if not isinstance(raw_headers, (list, tuple)) or len(raw_headers) > _MAX_HEADERS:
        return None
    headers = []
    for pair in raw_headers:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            return None
        name, text = pair
        if not (isinstance(name, bytes) and isinstance(text, bytes)):
            return None
        if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(text) or name in (b"content-length",):
            return None
        headers.append((name, text))
    return _Stored(status, headers, body, etag)


def route_cache_of(endpoint: Any) -> RouteCache | None:
    """The :class:`RouteCache` that :func:`cached_route` put on ``endpoint``, if any."""
    policy = getattr(endpoint, ATTRIBUTE, None)
    return policy if isinstance(policy, RouteCache) else None
