"""Async SQLAlchemy 2.0 sessions whose commits invalidate the cache: what a request wrote is cleared at commit.

Problem: a FastAPI request writes through an ``AsyncSession``; the cached reads (repository methods and whole
routes) of what it wrote must be cleared once the transaction commits (not before: other requests still read
the old rows; never after a rollback), and before the write's response goes out, so that a client that got the
response never reads the old row again.

Solution: session events on the sync ``Session`` class behind the ``AsyncSession``:

- ``after_flush`` notes each written row (its resource and id) in ``session.info``;
- ``do_orm_execute`` notes bulk ``update``/``delete``/``insert`` statements (their rows are unknown: the whole
  resource);
- ``after_rollback`` forgets the notes; ``after_commit`` marks them committed;
- :meth:`Database.commit` awaits the commit, then the invalidation of what was committed (on cachekit's thread
  pool when the cache's backend blocks, so the event loop never waits on Redis).

E.g.::

    database = Database("postgresql+asyncpg://postgres@127.0.0.1:5432/test", cache)
    database.track(User, "users")
    async with database.session() as session:
        session.add(User(name="Ada", email="ada@example.com"))
        await database.commit(session)            # committed, then users/agg (and the new id) invalidated
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from cachekit import Cache, Invalidation
from cachekit.starlette import ainvalidate

__all__ = ["Database", "TrackedSession", "has_writes"]

_DATABASE = "cachekit.database"
_PENDING = "cachekit.pending"
_COMMITTED = "cachekit.committed"


class TrackedSession(Session):
    """The sync session behind every ``AsyncSession`` of a :class:`Database`; its events note the writes."""


class Database:
    """An async engine, its sessions, and the cache their commits invalidate.

    :param url: an async SQLAlchemy URL (``postgresql+asyncpg://...``).
    :param cache: the :class:`~cachekit.Cache` of the application's cached reads and routes.
    :param engine_options: passed to ``create_async_engine`` (``connect_args``, ``pool_size`` ...).
    """

    def __init__(self, url: str, cache: Cache, **engine_options: Any) -> None:
        self.cache = cache
        self.engine = create_async_engine(url, **engine_options)
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=TrackedSession, info={_DATABASE: self}
        )
        self.resources: dict[type[Any], str] = {}

    def track(self, model: type[Any], resource: str) -> None:
        """Invalidate ``resource`` when rows of ``model`` are written."""
        self.resources[model] = resource

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for one unit of work (one request); what it did not commit is rolled back at the end."""
        async with self.sessions() as session:
            try:
                yield session
            finally:
                # A commit made without commit() below still invalidates, if later than it should.
                await self._invalidate(session)

    async def commit(self, session: AsyncSession) -> None:
        """Commit ``session``, then invalidate what it wrote; return once both are done."""
        await session.commit()
        await self._invalidate(session)

    async def _invalidate(self, session: AsyncSession) -> None:
        committed: list[Invalidation] = session.info.pop(_COMMITTED, [])
        for invalidation in _merged(committed):
            await ainvalidate(self.cache, invalidation)

    async def create_all(self, metadata: sa.MetaData) -> None:
        """Create the tables of ``metadata`` (for tests and first runs; use migrations in production)."""
        async with self.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)

    async def dispose(self) -> None:
        """Close the engine's connections."""
        await self.engine.dispose()


def has_writes(session: AsyncSession) -> bool:
    """Whether ``session`` holds writes not committed yet: its reads must neither use nor fill the cache."""
    sync = session.sync_session
    return bool(sync.info.get(_PENDING)) or bool(sync.new) or bool(sync.dirty) or bool(sync.deleted)


def _database(session: Session) -> Database | None:
    database = session.info.get(_DATABASE)
    return database if isinstance(database, Database) else None


@event.listens_for(TrackedSession, "after_flush")
def _after_flush(session: Session, flush_context: UOWTransaction) -> None:
    database = _database(session)
    if database is None:
        return
    for obj in [*session.new, *session.dirty, *session.deleted]:
        resource = database.resources.get(type(obj))
        if resource is not None:
            identity = sa.inspect(obj).mapper.primary_key_from_instance(obj)
            item = identity[0] if len(identity) == 1 else tuple(identity)
            session.info.setdefault(_PENDING, []).append(Invalidation(resource, ids=[item]))


@event.listens_for(TrackedSession, "do_orm_execute")
def _bulk_statement(state: ORMExecuteState) -> None:
    database = _database(state.session)
    if database is None or not (state.is_update or state.is_delete or state.is_insert):
        return
    mapper = state.bind_mapper
    resource = database.resources.get(mapper.class_) if mapper is not None else None
    for name in [resource] if resource else database.resources.values():  # unknown target: every resource
        state.session.info.setdefault(_PENDING, []).append(Invalidation(name, whole=True))


@event.listens_for(TrackedSession, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    session.info.setdefault(_COMMITTED, []).extend(pending)


@event.listens_for(TrackedSession, "after_rollback")
def _after_rollback(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's rollback keeps the outer notes: clearing more is safe
        session.info.pop(_PENDING, None)


def _merged(invalidations: list[Invalidation]) -> list[Invalidation]:
    """One invalidation per resource: its ids together, or the whole resource."""
    by_resource: dict[str, list[Invalidation]] = {}
    for invalidation in invalidations:
        by_resource.setdefault(invalidation.resource, []).append(invalidation)
    merged = []
    for resource, group in by_resource.items():
        if any(inv.whole for inv in group):
            merged.append(Invalidation(resource, whole=True))
        else:
            ids: Mapping[Any, None] = dict.fromkeys(i for inv in group for i in inv.ids)
            merged.append(Invalidation(resource, ids=list(ids)))
    return merged
