"""The FastAPI recipe (``recipes/fastapi/``) against the real PostgreSQL through asyncpg, driven by httpx.

These are the files the recipe's README tells users to copy. Each test runs in a schema of its own and counts the
SELECTs the engine sends, so a hit is seen to reach neither the route nor the repository's query; what a route
stored is checked against the route's own key (``RouteCache.key``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from starlette.requests import Request

from cachekit import Cache, Invalidation
from cachekit.starlette import ainvalidate, route_cache_of
from recipes.fastapi.app import create_app
from recipes.fastapi.database import Database
from recipes.fastapi.models import Base
from tests.recipes.postgres import POSTGRES_URL, own_schema

Scenario = Callable[["Client"], Awaitable[None]]


def asyncpg_url() -> str:
    scheme, rest = POSTGRES_URL.split("://", 1)
    return f"postgresql+asyncpg://{rest}" if scheme in ("postgresql", "postgres") else POSTGRES_URL


class Client:
    """An httpx client on the app, the app, its cache, and the SELECTs the engine has sent."""

    def __init__(self, http: httpx.AsyncClient, app: FastAPI, database: Database) -> None:
        self.http = http
        self.app = app
        self.database = database
        self.cache = database.cache
        self.selects = 0

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                self.selects += 1

        event.listen(database.engine.sync_engine, "before_cursor_execute", count)

    async def add(self, name: str) -> dict[str, Any]:
        response = await self.http.post("/users", json={"name": name, "email": f"{name.lower()}@example.com"})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def route_key(self, path: str, user_id: str | None = None, query: bytes = b"",
                  headers: list[tuple[bytes, bytes]] | None = None) -> str:
        """The key the cached route of ``path`` uses for such a request now."""
        route = next(r for r in self.app.routes if getattr(r, "path", None) == path)
        policy = route_cache_of(route.endpoint)  # type: ignore[attr-defined]
        assert policy is not None
        scope = {"type": "http", "method": "GET", "path": path.replace("{user_id}", user_id or ""),
                 "query_string": query, "headers": headers or [],
                 "path_params": {"user_id": user_id} if user_id else {}}
        return policy.key(Request(scope))

    def stored(self, key: str) -> bool:
        current = self.cache.keys()  # what reads can still reach
        return key in current


@pytest.fixture
def schema() -> Iterator[dict[str, Any]]:
    with own_schema() as (name, _):
        yield {"server_settings": {"search_path": name}}


def drive(schema: dict[str, Any], cache: Cache, scenario: Scenario) -> None:
    """Build the recipe's app on a fresh schema in a new event loop (asyncpg's connections belong to one)."""

    async def main() -> None:
        database = Database(asyncpg_url(), cache, connect_args=schema, pool_size=8)
        try:
            await database.create_all(Base.metadata)
            app = create_app(database)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://recipe") as http:
                await scenario(Client(http, app, database))
        finally:
            await database.dispose()

    asyncio.run(main())


@pytest.fixture
def memory_cache() -> Iterator[Cache]:
    with Cache(driver="memory", namespace="api", ttl=60) as cache:
        yield cache


def test_hits_skip_the_route_and_the_query_and_304_answers_if_none_match(
    schema: dict[str, Any], memory_cache: Cache
) -> None:
    async def scenario(client: Client) -> None:
        ada = await client.add("Ada")
        path = f"/users/{ada['id']}"
        first = await client.http.get(path)
        assert first.json() == {**ada, "greeting": "Hello Ada"}
        assert client.selects == 1
        second = await client.http.get(path)
        assert second.json() == first.json()
        assert second.headers["etag"] == first.headers["etag"]
        assert second.headers["cache-control"] == "no-cache"
        not_modified = await client.http.get(path, headers={"if-none-match": first.headers["etag"]})
        assert (not_modified.status_code, not_modified.content) == (304, b"")
        assert client.selects == 1
        assert client.stored(client.route_key("/users/{user_id}", str(ada["id"])))

    drive(schema, memory_cache, scenario)


def test_vary_keys_by_accept_language_and_the_repository_read_is_shared(
    schema: dict[str, Any], memory_cache: Cache
) -> None:
    async def scenario(client: Client) -> None:
        ada = await client.add("Ada")
        path = f"/users/{ada['id']}"
        french = await client.http.get(path, headers={"accept-language": "fr-FR,fr;q=0.9"})
        german = await client.http.get(path, headers={"accept-language": "de"})
        assert (french.json()["greeting"], german.json()["greeting"]) == ("Bonjour Ada", "Hallo Ada")
        assert french.headers["vary"] == "accept-language"
        # Two route entries, one repository entry: the German miss found the row in the repository's cache.
        assert client.selects == 1
        again = await client.http.get(path, headers={"accept-language": "fr-FR,fr;q=0.9"})
        assert again.json()["greeting"] == "Bonjour Ada"
        assert client.selects == 1

    drive(schema, memory_cache, scenario)


def test_set_cookie_and_error_responses_are_not_stored(schema: dict[str, Any], memory_cache: Cache) -> None:
    async def scenario(client: Client) -> None:
        ada = await client.add("Ada")
        uid = str(ada["id"])
        for _ in range(2):
            remembered = await client.http.get(f"/users/{uid}?remember=true")
            assert remembered.cookies["last_user"] == uid
            assert (await client.http.get("/users/999999")).status_code == 404
            assert (await client.http.get("/users/not-a-number")).status_code == 422
        assert not client.stored(client.route_key("/users/{user_id}", uid, query=b"remember=true"))
        assert not client.stored(client.route_key("/users/{user_id}", "999999"))
        await client.http.get(f"/users/{uid}")
        assert client.stored(client.route_key("/users/{user_id}", uid))  # the control: a plain 200 is stored

    drive(schema, memory_cache, scenario)


def test_writes_make_routes_and_repository_reads_fresh_at_commit(
    schema: dict[str, Any], memory_cache: Cache
) -> None:
    async def scenario(client: Client) -> None:
        ada, bea = await client.add("Ada"), await client.add("Bea")
        for path in (f"/users/{ada['id']}", f"/users/{bea['id']}", "/users"):
            await client.http.get(path)
        selects = client.selects
        updated = await client.http.put(f"/users/{ada['id']}", json={"name": "Grace"})
        assert updated.json() == {**ada, "name": "Grace", "version": 2}
        assert (await client.http.get(f"/users/{ada['id']}")).json()["name"] == "Grace"
        assert [u["name"] for u in (await client.http.get("/users")).json()] == ["Grace", "Bea"]
        before = client.selects
        await client.http.get(f"/users/{bea['id']}")
        assert client.selects == before  # another user stays cached
        assert client.selects > selects

        # SQL around the session is not seen by the events: invalidate by hand.
        async with client.database.engine.begin() as connection:
            await connection.execute(text("UPDATE users SET name = 'Bee' WHERE id = :id"), {"id": bea["id"]})
        assert (await client.http.get(f"/users/{bea['id']}")).json()["name"] == "Bea"
        await ainvalidate(client.cache, Invalidation("users", ids=[bea["id"]]))
        assert (await client.http.get(f"/users/{bea['id']}")).json()["name"] == "Bee"

        assert (await client.http.delete(f"/users/{ada['id']}")).status_code == 204
        assert (await client.http.get(f"/users/{ada['id']}")).status_code == 404
        assert (await client.http.delete("/users")).status_code == 204  # a bulk statement: the whole resource
        assert (await client.http.get("/users")).json() == []
        assert (await client.http.get(f"/users/{bea['id']}")).status_code == 404

    drive(schema, memory_cache, scenario)


def test_a_failed_write_invalidates_nothing_and_caches_nothing_uncommitted(
    schema: dict[str, Any], memory_cache: Cache
) -> None:
    async def scenario(client: Client) -> None:
        ada = await client.add("Ada")
        await client.http.get(f"/users/{ada['id']}")
        invalidations = client.cache.invalidations
        assert (await client.http.put("/users/999999", json={"name": "x"})).status_code == 404
        assert client.cache.invalidations == invalidations
        # A unit of work that reads after writing, then rolls back: its read bypasses the cache.
        async with client.database.session() as session:
            from recipes.fastapi.repository import UserRepository

            users = UserRepository(session, client.cache)
            await users.update(ada["id"], {"name": "Never committed"})
            assert (await users.get(ada["id"]))["name"] == "Never committed"
            await session.rollback()
        assert (await client.http.get(f"/users/{ada['id']}")).json()["name"] == "Ada"
        fresh = UserRepository(session, client.cache)
        assert (await fresh.get(ada["id"]))["name"] == "Ada"

    drive(schema, memory_cache, scenario)


# -- one writer, several readers ---------------------------------------------------------------------------------

WRITES = 25
READERS = 4
MAX_READS_PER_READER = 600
READ_PAUSE = 0.005  # seconds between a reader's requests, so the writer gets the loop too


@pytest.fixture(params=["memory", "redis"])
def any_cache(request: pytest.FixtureRequest) -> Iterator[Cache]:
    if request.param == "memory":
        cache = Cache(driver="memory", namespace="api", ttl=60)
    else:
        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        cache = Cache(driver="redis", namespace=f"api-{uuid.uuid4().hex[:8]}", ttl=60,
                      config={"url": url, "key_prefix": prefix})
    with cache:
        yield cache


@pytest.mark.slow
def test_no_response_is_older_than_a_write_that_returned_before_it_began(
    schema: dict[str, Any], any_cache: Cache
) -> None:
    stale: list[tuple[str, int, int]] = []
    reads = [0]

    async def scenario(client: Client) -> None:
        ada = await client.add("Ada")
        await client.add("Bea")
        path = f"/users/{ada['id']}"
        floor = [1]  # the version of the last write whose response came back
        done = asyncio.Event()

        async def writer() -> None:
            for number in range(WRITES):
                response = await client.http.put(path, json={"name": f"Ada {number}"})
                floor[0] = response.json()["version"]
                await asyncio.sleep(0)
            done.set()

        async def reader(index: int) -> None:
            languages = itertools.cycle(["fr", "de"] if index % 2 else ["en"])
            for _ in range(MAX_READS_PER_READER):
                if done.is_set():
                    return
                seen = floor[0]
                if index % 2:
                    response = await client.http.get(path, headers={"accept-language": next(languages)})
                    version = response.json()["version"]
                    where = "get"
                else:
                    response = await client.http.get("/users")
                    version = next(u["version"] for u in response.json() if u["id"] == ada["id"])
                    where = "list"
                reads[0] += 1
                if version < seen:
                    stale.append((where, seen, version))
                await asyncio.sleep(READ_PAUSE)

        started = time.monotonic()
        await asyncio.gather(writer(), *(reader(i) for i in range(READERS)))
        elapsed = time.monotonic() - started
        assert floor[0] == WRITES + 1
        print(f"{reads[0]} reads, {WRITES} writes in {elapsed:.1f}s; hits {client.cache.stats().hits}")

    drive(schema, any_cache, scenario)
    assert reads[0] >= READERS, "the readers never ran alongside the writer"
    assert stale == [], f"{len(stale)} stale responses of {reads[0]}; first: {stale[:5]}"
