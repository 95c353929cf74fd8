"""A cached repository over an ``AsyncSession``: the session is the instance's, so it never enters a key.

A repository is built per request around the request's session (a FastAPI dependency); ``@cached`` keys on the
method's arguments only (``get(7)``, ``list(limit=20, offset=40)``), never on ``self``. Rows come back as plain
dicts, which every cache driver stores and no session state rides along with. Writes only flush: the request
commits with :meth:`~recipes.fastapi.database.Database.commit`, which invalidates what was written.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cachekit import Cache, cached

from .database import has_writes
from .models import User

__all__ = ["UserRepository"]

_COLUMNS = (User.id, User.name, User.email, User.version)


class UserRepository:
    """Users through one session; reads cached in ``cache`` under the resource ``users``."""

    name = "users"

    def __init__(self, session: AsyncSession, cache: Cache) -> None:
        self.session = session
        self.cache = cache

    async def get(self, id: int) -> dict[str, Any] | None:
        """The user ``id`` as a dict, or None; cached unless this session holds uncommitted writes."""
        if has_writes(self.session):
            return await self._get.uncached(id)  # type: ignore[no-any-return]
        return await self._get(id)

    async def list(self, *, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """A page of users by id; cached unless this session holds uncommitted writes."""
        if has_writes(self.session):
            return await self._list.uncached(limit=limit, offset=offset)  # type: ignore[no-any-return]
        return await self._list(limit=limit, offset=offset)

    @cached(action="get")
    async def _get(self, id: int) -> dict[str, Any] | None:
        row = (await self.session.execute(select(*_COLUMNS).where(User.id == id))).mappings().first()
        return dict(row) if row is not None else None

    @cached(action="list")
    async def _list(self, *, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        query = select(*_COLUMNS).order_by(User.id).limit(limit).offset(offset)
        return [dict(row) for row in (await self.session.execute(query)).mappings()]

    async def add(self, data: dict[str, Any]) -> dict[str, Any]:
        """Insert a user (flushed, not committed)."""
        user = User(**data)
        self.session.add(user)
        await self.session.flush()
        return _row(user)

    async def update(self, id: int, data: dict[str, Any]) -> dict[str, Any] | None:
        """Change a user (flushed, not committed; its version grows by one); None when there is none."""
        user = await self.session.get(User, id)
        if user is None:
            return None
        for field, value in data.items():
            setattr(user, field, value)
        await self.session.flush()
        return _row(user)

    async def delete(self, id: int) -> bool:
        """Delete a user (not committed); whether there was one."""
        user = await self.session.get(User, id)
        if user is None:
            return False
        await self.session.delete(user)
        await self.session.flush()
        return True

    async def delete_all(self) -> None:
        """A bulk statement: the whole resource is invalidated at commit."""
        await self.session.execute(delete(User))


def _row(user: User) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "email": user.email, "version": user.version}
