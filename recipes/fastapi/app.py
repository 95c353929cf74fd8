"""A FastAPI app with cached routes and a cached repository on async SQLAlchemy; writes invalidate at commit.

Routes:

- ``GET /users`` (``?limit=&offset=``): cached route, action ``list``: any write to ``users`` makes it fresh;
- ``GET /users/{user_id}``: cached route, action ``get`` keyed by ``user_id`` and ``Accept-Language`` (the
  greeting is localized); a write to that user (or the whole resource) makes it fresh; ``?remember=true``
  sets a cookie, and such a response is never stored;
- ``POST /users``, ``PUT /users/{user_id}``, ``DELETE /users/{user_id}``, ``DELETE /users``: write, commit,
  invalidate, then answer;
- ``GET /cache/stats``: the cache's counters.

E.g.::

    app = create_app(Database("postgresql+asyncpg://postgres@127.0.0.1:5432/test", Cache(namespace="api")))
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from cachekit.starlette import CachedAPIRoute, cached_route

from .database import Database
from .models import User
from .repository import UserRepository

__all__ = ["Greeting", "UserIn", "UserOut", "UserPatch", "create_app", "get_session", "get_users"]

_GREETINGS = {"fr": "Bonjour", "de": "Hallo", "es": "Hola"}


class UserIn(BaseModel):
    """A new user."""

    name: str
    email: str


class UserPatch(BaseModel):
    """Fields to change."""

    name: str | None = None
    email: str | None = None


class UserOut(BaseModel):
    """A user as the API shows it."""

    id: int
    name: str
    email: str
    version: int


class Greeting(UserOut):
    """A user with a greeting in the request's language."""

    greeting: str


def greeting(accept_language: str | None, name: str) -> str:
    """``Bonjour Ada`` for ``fr``, ``Hello Ada`` for anything unknown."""
    language = (accept_language or "").split(",")[0].split("-")[0].strip().lower()
    return f"{_GREETINGS.get(language, 'Hello')} {name}"


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session (a dependency): one unit of work, invalidating at :meth:`Database.commit`."""
    database: Database = request.app.state.database
    async with database.session() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]


def get_users(request: Request, session: Session) -> UserRepository:
    """The request's repository: its session is an attribute, never part of a cache key."""
    return UserRepository(session, request.app.state.database.cache)


Users = Annotated[UserRepository, Depends(get_users)]


def create_app(database: Database) -> FastAPI:
    """The app over ``database`` (its engine, sessions and cache); tables are not created here."""
    cache = database.cache
    database.track(User, "users")
    app = FastAPI(title="cachekit FastAPI recipe")
    app.router.route_class = CachedAPIRoute  # before the routes: they are built with it
    app.state.database = database

    @app.get("/users", response_model=list[UserOut])
    @cached_route(cache, resource="users", action="list")
    async def list_users(users: Users, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        return await users.list(limit=limit, offset=offset)

    @app.get("/users/{user_id}", response_model=Greeting)
    @cached_route(cache, resource="users", action="get", id_param="user_id", vary=("accept-language",))
    async def get_user(user_id: int, request: Request, response: Response, users: Users,
                       remember: bool = False) -> dict[str, Any]:
        user = await users.get(user_id)
        if user is None:
            raise HTTPException(404, f"no user {user_id}")
        if remember:
            response.set_cookie("last_user", str(user_id))
        return {**user, "greeting": greeting(request.headers.get("accept-language"), user["name"])}

    @app.post("/users", response_model=UserOut, status_code=201)
    async def create_user(body: UserIn, session: Session, users: Users) -> dict[str, Any]:
        user = await users.add(body.model_dump())
        await database.commit(session)
        return user

    @app.put("/users/{user_id}", response_model=UserOut)
    async def update_user(user_id: int, body: UserPatch, session: Session, users: Users) -> dict[str, Any]:
        user = await users.update(user_id, body.model_dump(exclude_unset=True))
        if user is None:
            raise HTTPException(404, f"no user {user_id}")
        await database.commit(session)
        return user

    @app.delete("/users/{user_id}", status_code=204)
    async def delete_user(user_id: int, session: Session, users: Users) -> None:
        if not await users.delete(user_id):
            raise HTTPException(404, f"no user {user_id}")
        await database.commit(session)

    @app.delete("/users", status_code=204)
    async def delete_users(session: Session, users: Users) -> None:
        await users.delete_all()
        await database.commit(session)

    @app.get("/cache/stats")
    def cache_stats() -> dict[str, Any]:  # sync: FastAPI runs it in a thread, as stats() may ask the backend
        return dict(cache.stats().as_dict())

    return app
