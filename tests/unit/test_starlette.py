"""``cachekit.starlette``: cached Starlette and FastAPI routes, driven through httpx's ASGI transport.

Each test counts the endpoint's calls: a hit must not call it, a miss must, whatever the response says.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi import Response as FastAPIResponse
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from cachekit import Cache, Invalidation, invalidates
from cachekit.errors import ConfigurationError, KeyResolverError
from cachekit.starlette import CachedAPIRoute, CachedRoute, ainvalidate, cached_route, route_cache_of
from tests.servers import free_port

Call = Callable[[httpx.AsyncClient], Awaitable[None]]


def drive(app: Any, scenario: Call) -> None:
    """Run ``scenario`` against ``app`` with an httpx client on the ASGI transport, in a fresh event loop."""

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            await scenario(client)

    asyncio.run(main())


@pytest.fixture
def cache() -> Iterator[Cache]:
    with Cache(driver="memory", namespace="web", ttl=60) as cache:
        yield cache


class Users:
    """The rows behind the endpoints, a write that invalidates them, and a count of endpoint calls."""

    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.rows: dict[int, dict[str, Any]] = {i: {"id": i, "name": f"user {i}"} for i in range(1, 4)}
        self.calls = 0

    @invalidates("update")
    def update(self, id: int, data: dict[str, Any]) -> None:
        self.rows[id] = {**self.rows[id], **data}


def starlette_app(cache: Cache, users: Users, **options: Any) -> Starlette:
    @cached_route(cache, resource="users", action="get", id_param="user_id", **options)
    async def get_user(request: Request) -> Response:
        users.calls += 1
        user = users.rows.get(request.path_params["user_id"])
        if user is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        response = JSONResponse({**user, "q": request.query_params.get("q"),
                                 "lang": request.headers.get("accept-language")})
        if request.query_params.get("cookie"):
            response.set_cookie("seen", "1")
        return response

    @cached_route(cache, resource="users", action="list")
    def list_users(request: Request) -> Response:  # a sync endpoint: run in Starlette's thread pool
        users.calls += 1
        return JSONResponse(sorted(users.rows.values(), key=lambda u: u["id"]))

    @cached_route(cache, resource="users", action="list")
    async def stream_users(request: Request) -> Response:
        users.calls += 1
        return StreamingResponse(iter([b"a", b"b"]), media_type="text/plain")

    async def post_user(request: Request) -> Response:
        return PlainTextResponse("posted", status_code=201)

    return Starlette(routes=[
        CachedRoute("/users/{user_id:int}", get_user, methods=["GET", "POST"]),
        CachedRoute("/users", list_users),
        CachedRoute("/stream", stream_users),
        CachedRoute("/plain", post_user, methods=["POST"]),
    ])


def test_a_hit_does_not_call_the_endpoint_and_has_an_etag_and_cache_control(cache: Cache) -> None:
    users = Users(cache)

    async def scenario(client: httpx.AsyncClient) -> None:
        first = await client.get("/users/1")
        second = await client.get("/users/1")
        assert users.calls == 1
        assert first.json() == second.json() == {"id": 1, "name": "user 1", "q": None, "lang": None}
        assert second.headers["etag"] == first.headers["etag"]
        assert first.headers["etag"].startswith('W/"')
        assert second.headers["cache-control"] == "no-cache"
        assert second.headers["content-type"] == "application/json"
        assert int(second.headers["content-length"]) == len(second.content)

    drive(starlette_app(cache, users), scenario)


def test_if_none_match_gets_304_on_a_hit_and_on_the_miss_that_stores(cache: Cache) -> None:
    users = Users(cache)

    async def scenario(client: httpx.AsyncClient) -> None:
        etag = (await client.get("/users/1")).headers["etag"]
        hit = await client.get("/users/1", headers={"if-none-match": etag})
        assert (hit.status_code, hit.content, hit.headers["etag"]) == (304, b"", etag)
        assert users.calls == 1
        other = await client.get("/users/1", headers={"if-none-match": '"something-else"'})
        assert other.status_code == 200
        # After a write the endpoint runs; a client holding the new ETag (another replica computed it) gets 304.
        users.update(1, {"name": "Ada"})
        fresh = await client.get("/users/1")
        assert fresh.json()["name"] == "Ada"
        cache.invalidate(Invalidation("users", ids=[1]))
        revalidated = await client.get("/users/1", headers={"if-none-match": f'"x", {fresh.headers["etag"]}'})
        assert revalidated.status_code == 304
        assert users.calls == 3

    drive(starlette_app(cache, users), scenario)


def test_head_is_answered_from_the_get_entry_and_never_stored(cache: Cache) -> None:
    users = Users(cache)

    async def scenario(client: httpx.AsyncClient) -> None:
        await client.head("/users/2")
        assert users.calls == 1
        await client.get("/users/2")
        assert users.calls == 2  # the HEAD stored nothing
        head = await client.head("/users/2")
        assert head.status_code == 200
        assert users.calls == 2

    drive(starlette_app(cache, users), scenario)


def test_query_and_vary_headers_are_in_the_key(cache: Cache) -> None:
    users = Users(cache)

    async def scenario(client: httpx.AsyncClient) -> None:
        await client.get("/users/1?q=a&r=1")
        await client.get("/users/1?r=1&q=a")  # the same query in another order: a hit
        assert users.calls == 1
        assert (await client.get("/users/1?q=b")).json()["q"] == "b"
        assert users.calls == 2
        fr = await client.get("/users/1", headers={"accept-language": "fr"})
        de = await client.get("/users/1", headers={"accept-language": "de"})
        assert (fr.json()["lang"], de.json()["lang"]) == ("fr", "de")
        assert fr.headers["vary"] == "accept-language"
        assert users.calls == 4
        await client.get("/users/1", headers={"accept-language": "fr", "x-other": "ignored"})
        assert users.calls == 4

    drive(starlette_app(cache, users, vary=("Accept-Language",)), scenario)


def test_set_cookie_and_non_2xx_are_not_stored_unless_told(cache: Cache) -> None:
    users = Users(cache)

    async def scenario(client: httpx.AsyncClient) -> None:
        for _ in range(2):
            assert (await client.get("/users/1?cookie=1")).cookies["seen"] == "1"
            assert (await client.get("/users/9")).status_code == 404
        assert users.calls == 4

    drive(starlette_app(cache, users), scenario)

    told = Users(cache)

    async def stored(client: httpx.AsyncClient) -> None:
        for _ in range(2):
            assert (await client.get("/users/1?cookie=1")).cookies["seen"] == "1"
            assert (await client.get("/users/9")).status_code == 404
        assert told.calls == 2

    with Cache(driver="memory", namespace="told") as other:
        drive(starlette_app(other, told, cache_set_cookie=True, cache_statuses=(200, 404)), stored)


def test_a_write_makes_the_item_and_the_lists_fresh_and_leaves_other_items_cached(cache: Cache) -> None:
    users = Users(cache)

    async def scenario(client: httpx.AsyncClient) -> None:
        for path in ("/users/1", "/users/2", "/users"):
            await client.get(path)
        assert users.calls == 3
        users.update(1, {"name": "Ada"})  # @invalidates: bumps users/item/1 and users/agg
        assert (await client.get("/users/1")).json()["name"] == "Ada"
        assert (await client.get("/users")).json()[0]["name"] == "Ada"
        await client.get("/users/2")
        assert users.calls == 5
        users.rows[2]["name"] = "Bea"  # a write behind the cache's back, then told
        await ainvalidate(cache, Invalidation("users", ids=[2]))
        assert (await client.get("/users/2")).json()["name"] == "Bea"
        cache.invalidate_resource("users")
        await client.get("/users/1")
        assert users.calls == 7

    drive(starlette_app(cache, users), scenario)


def test_other_methods_authorization_and_streaming_pass_through(cache: Cache) -> None:
    users = Users(cache)

    async def scenario(client: httpx.AsyncClient) -> None:
        assert (await client.post("/users/1")).status_code == 200  # the endpoint answers POST: never cached
        await client.post("/users/1")
        assert users.calls == 2
        await client.get("/users/1", headers={"authorization": "Bearer a"})
        await client.get("/users/1", headers={"authorization": "Bearer a"})
        assert users.calls == 4
        for _ in range(2):
            assert (await client.get("/stream")).text == "ab"
        assert users.calls == 6
        assert (await client.post("/plain")).status_code == 201

    drive(starlette_app(cache, users), scenario)


def test_an_entry_that_is_not_a_response_is_a_miss_and_replaced(cache: Cache) -> None:
    users = Users(cache)
    app = starlette_app(cache, users)
    policy = route_cache_of(app.routes[0].endpoint)  # type: ignore[attr-defined]
    assert policy is not None
    request = Request({"type": "http", "method": "GET", "path": "/users/1", "query_string": b"", "headers": [],
                       "path_params": {"user_id": 1}})
    key = policy.key(request)
    planted = [
        b"not a response",
        {"v": 1, "s": 200, "h": [[b"x-evil", b"a\r\nset-cookie: b"]], "b": b"{}", "e": 'W/"1"'},
        {"v": 1, "s": 200, "h": [], "b": "text", "e": 'W/"1"'},
        {"v": 1, "s": 99, "h": [], "b": b"", "e": 'W/"1"'},
        {"v": 2, "s": 200, "h": [], "b": b"", "e": 'W/"1"'},
    ]

    async def scenario(client: httpx.AsyncClient) -> None:
        for value in planted:
            assert cache.codec is not None  # planted as another writer of the store would: past Cache.set's key check
            cache.driver.set(key, cache.codec.encode(value, 60, key), 60)
            response = await client.get("/users/1")
            assert response.json()["name"] == "user 1"
            assert "x-evil" not in response.headers
        assert users.calls == len(planted)
        assert cache.stats().errors == len(planted)
        await client.get("/users/1")  # the last miss stored a good entry
        assert users.calls == len(planted)

    drive(app, scenario)


def test_an_unreachable_cache_never_fails_a_request() -> None:
    config = {"url": f"redis://127.0.0.1:{free_port()}/0", "connect_timeout": 0.2, "command_timeout": 0.2,
              "retries": 0}
    with Cache(driver="redis", namespace="down", config=config, retry_attempts=1) as down:
        users = Users(down)

        async def scenario(client: httpx.AsyncClient) -> None:
            for _ in range(3):
                assert (await client.get("/users/1")).json()["name"] == "user 1"
            assert users.calls == 3
            assert down.stats().errors >= 1

        drive(starlette_app(down, users), scenario)


def test_options_are_checked_when_decorating(cache: Cache) -> None:
    with pytest.raises(ConfigurationError, match="id_param"):
        cached_route(cache, resource="users", action="get")
    with pytest.raises(ConfigurationError, match="one-item action"):
        cached_route(cache, resource="users", action="list", id_param="user_id")
    with pytest.raises(KeyResolverError):
        cached_route(cache, resource="users", action="no-such-action")
    with pytest.raises(ConfigurationError, match="vary"):
        cached_route(cache, resource="users", action="list", vary="accept-language")
    with pytest.raises(ConfigurationError, match="cache_statuses"):
        cached_route(cache, resource="users", action="list", cache_statuses=(304,))
    with pytest.raises(ConfigurationError, match="Cache"):
        cached_route("cache", resource="users", action="list")  # type: ignore[arg-type]

    @cached_route(cache, resource="users", action="get", id_param="user_id")
    async def misnamed(request: Request) -> Response:
        return PlainTextResponse("never")

    with pytest.raises(ConfigurationError, match="no such parameter"):
        CachedRoute("/users/{id}", misnamed)

    @cached_route(cache, resource="users", action="list")
    class Endpoint(HTTPEndpoint):
        async def get(self, request: Request) -> Response:
            return PlainTextResponse("never cached, so refused")

    with pytest.raises(ConfigurationError, match="HTTPEndpoint"):
        CachedRoute("/users", Endpoint)
    app = FastAPI()
    app.router.route_class = CachedAPIRoute
    with pytest.raises(ConfigurationError, match="no such parameter"):
        app.get("/users/{id}")(misnamed)


# -- FastAPI ------------------------------------------------------------------------------------------------------


class User(BaseModel):
    id: int
    name: str


def fastapi_app(cache: Cache, users: Users) -> FastAPI:
    dependency_calls: list[int] = []

    def session() -> Iterator[str]:
        dependency_calls.append(1)
        yield "session"

    app = FastAPI()
    app.router.route_class = CachedAPIRoute
    app.state.dependency_calls = dependency_calls

    @app.get("/users/{user_id}", response_model=User)
    @cached_route(cache, resource="users", action="get", id_param="user_id")
    async def get_user(user_id: int, response: FastAPIResponse, db: str = Depends(session),
                       remember: bool = False) -> dict[str, Any]:
        users.calls += 1
        if user_id not in users.rows:
            raise HTTPException(404, "no such user")
        if remember:
            response.set_cookie("last", str(user_id))
        return {**users.rows[user_id], "secret": "not in the response model"}

    router = APIRouter(route_class=CachedAPIRoute)

    @router.get("/users")
    @cached_route(cache, resource="users", action="list")
    def list_users() -> list[User]:
        users.calls += 1
        return [User(**row) for row in users.rows.values()]

    app.include_router(router, prefix="/v1")
    return app


def test_fastapi_stores_the_rendered_response_model_and_skips_dependencies_on_a_hit(cache: Cache) -> None:
    users = Users(cache)
    app = fastapi_app(cache, users)

    async def scenario(client: httpx.AsyncClient) -> None:
        first, second = await client.get("/users/1"), await client.get("/users/1")
        assert first.json() == second.json() == {"id": 1, "name": "user 1"}  # rendered by the response model
        assert users.calls == 1
        assert len(app.state.dependency_calls) == 1
        assert (await client.get("/users/1", headers={"if-none-match": first.headers["etag"]})).status_code == 304
        users.update(1, {"name": "Ada"})
        assert (await client.get("/users/1")).json()["name"] == "Ada"
        assert users.calls == 2

    drive(app, scenario)


def test_fastapi_set_cookie_from_a_response_parameter_and_errors_are_not_stored(cache: Cache) -> None:
    users = Users(cache)

    async def scenario(client: httpx.AsyncClient) -> None:
        for _ in range(2):
            assert (await client.get("/users/2?remember=true")).cookies["last"] == "2"
            assert (await client.get("/users/99")).status_code == 404
            assert (await client.get("/users/zero")).status_code == 422
        assert users.calls == 4

    drive(fastapi_app(cache, users), scenario)


def test_fastapi_included_router_routes_are_cached_and_invalidated(cache: Cache) -> None:
    users = Users(cache)

    async def scenario(client: httpx.AsyncClient) -> None:
        assert len((await client.get("/v1/users")).json()) == 3
        await client.get("/v1/users")
        assert users.calls == 1
        users.update(2, {"name": "Bea"})
        assert (await client.get("/v1/users")).json()[1]["name"] == "Bea"
        assert users.calls == 2

    drive(fastapi_app(cache, users), scenario)


@pytest.mark.redis
def test_a_write_in_another_process_makes_redis_entries_fresh(redis_url: str, redis_prefix: str) -> None:
    # Two Caches on one Redis stand for two processes: the generations live in Redis, bumps are published.
    config = {"url": redis_url, "key_prefix": redis_prefix}
    namespace = f"web-{uuid.uuid4().hex[:8]}"
    with Cache(driver="redis", namespace=namespace, config=config) as serving, \
            Cache(driver="redis", namespace=namespace, config=config) as writing:
        users = Users(serving)

        async def scenario(client: httpx.AsyncClient) -> None:
            await client.get("/users/1")
            await client.get("/users/1")
            assert users.calls == 1
            users.rows[1]["name"] = "Ada"
            await ainvalidate(writing, Invalidation("users", ids=[1]))
            # Redis's Lua bump returned before this request began; the serving Cache renders with what Redis says
            # or with what the subscription told it, never an older generation.
            assert (await client.get("/users/1")).json()["name"] == "Ada"
            await client.get("/users/1")
            assert users.calls == 2

        drive(starlette_app(serving, users), scenario)


def test_optional_frameworks_are_imported_only_when_asked_for() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])  # this checkout's cachekit, not an installed one
    code = (
        "import sys, cachekit\n"
        "assert not {'starlette', 'fastapi'} & set(sys.modules), 'import cachekit imported a web framework'\n"
        "import cachekit.starlette\n"
        "assert 'starlette' in sys.modules and 'fastapi' not in sys.modules, 'fastapi imported too early'\n"
        "from cachekit.starlette import CachedAPIRoute\n"
        "assert 'fastapi' in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": root}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                            env=env)
    assert result.returncode == 0, result.stderr


def test_a_blocking_driver_serves_and_invalidates_through_the_executor(tmp_path: Any) -> None:
    # The filesystem driver blocks: its reads, stores and generation reads run on cachekit's thread pool.
    with Cache(driver="filesystem", namespace="disk", config={"directory": str(tmp_path / "cache")}) as disk:
        users = Users(disk)

        async def scenario(client: httpx.AsyncClient) -> None:
            first = await client.get("/users/3")
            assert (await client.get("/users/3")).json() == first.json()
            assert users.calls == 1
            assert (await client.get("/users/3", headers={"if-none-match": first.headers["etag"]})).status_code == 304
            users.update(3, {"name": "Cy"})
            assert (await client.get("/users/3")).json()["name"] == "Cy"
            assert users.calls == 2
            assert disk.stats().hits == 2

        drive(starlette_app(disk, users), scenario)


def test_ttl_bounds_an_entry_and_method_policies_apply(clock: Any) -> None:
    with Cache(driver="memory", namespace="ttl", ttl=300, clock=clock,
               method_policies={"list": False}) as short:
        users = Users(short)

        async def scenario(client: httpx.AsyncClient) -> None:
            await client.get("/users/1")
            clock.advance(9)
            await client.get("/users/1")
            assert users.calls == 1
            clock.advance(2)  # 11 s after the store: past the route's ttl=10, well within the cache's 300
            await client.get("/users/1")
            assert users.calls == 2
            await client.get("/users")
            await client.get("/users")  # "list" is disabled by the method policy: never cached
            assert users.calls == 4

        drive(starlette_app(short, users, ttl=10), scenario)
