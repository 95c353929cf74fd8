"""Invalidate a repository's cache from SQLAlchemy session events, at commit.

Problem: rows are written through sessions all over an application (the repository's writes, a service's unit
of work, ``session.execute(update(...))`` bulk statements), and each of them must clear the cached reads it
made stale, but only once the transaction commits: before that, other sessions still read the old rows, and a
rollback must leave the cache as it was.

Solution: listen to the session events of a ``sessionmaker`` (or of the ``Session`` class, for every session):

- ``after_flush``: note what the flush wrote, per row: its id, and the partition values it had before
  (attribute history) and has after, so a product moved from "kitchen" to "garden" clears both categories'
  lists and counts and no other category's;
- ``do_orm_execute``: note ``session.execute(update(...))``, ``delete(...)`` and ``insert(...)`` statements on
  a tracked model (their rows are not known: every entry of the model is cleared);
- ``after_commit``: send what was noted, merged into one :class:`~cachekit.Invalidation` per repository;
- ``after_rollback``: forget it (the writes never happened).

E.g.::

    sessions = sessionmaker(engine)
    products = ProductRepository(sessions, cache)   # calls track_invalidation(sessions, products)
    with sessions.begin() as session:                # any session of this sessionmaker
        session.get(Product, 1).category = "garden"
    # committed: get(1), the lists and counts, and the "kitchen" and "garden" pages are cleared

:func:`has_writes` tells a repository that a session holds uncommitted writes, so its reads through that
session bypass the cache. Not seen by these events: SQL sent around the session
(``session.connection().execute(text(...))``, another process): call ``cache.invalidate_resource(name)``.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, sessionmaker

from cachekit import Cache, Invalidation

__all__ = ["TrackedRepository", "has_writes", "track_invalidation"]

_PENDING = "cachekit.pending_invalidations"
_NO_VALUE = object()


class TrackedRepository(Protocol):
    """What the events need from a repository: its model, resource name, partitions and cache."""

    model: type[Any]
    name: str
    partitions: Mapping[str, Sequence[str]]
    cache: Cache


# The repositories of each sessionmaker (or Session class) whose events are listened to.
_TRACKED: weakref.WeakKeyDictionary[Any, list[TrackedRepository]] = weakref.WeakKeyDictionary()


def track_invalidation(target: sessionmaker[Any] | type[Session], repository: TrackedRepository) -> None:
    """Clear ``repository``'s entries when a session of ``target`` commits writes to its model.

    ``target`` is a ``sessionmaker`` (its sessions) or ``Session`` (every session). Tracking the same repository
    twice is harmless.
    """
    repositories = _TRACKED.get(target)
    if repositories is None:
        repositories = _TRACKED[target] = []
        _listen(target, repositories)
    if not any(r is repository for r in repositories):
        repositories.append(repository)


def has_writes(session: Session) -> bool:
    """Whether ``session`` holds writes that are not committed yet (flushed, pending, or bulk statements)."""
    return bool(session.info.get(_PENDING)) or bool(session.new) or bool(session.deleted) or bool(session.dirty)


def _listen(target: Any, repositories: list[TrackedRepository]) -> None:
    def after_flush(session: Session, flush_context: UOWTransaction) -> None:
        # new/dirty/deleted and the attribute history still show the state before the flush here.
        for kind, obj in _written(session):
            for repository in _repositories_of(repositories, type(obj)):
                _note(session, repository, _row_invalidation(repository, kind, obj))

    def do_orm_execute(execute_state: ORMExecuteState) -> None:
        if not (execute_state.is_update or execute_state.is_delete or execute_state.is_insert):
            return
        for repository in _repositories_of_statement(repositories, execute_state):
            _note(execute_state.session, repository, Invalidation(repository.name, whole=True))

    def after_commit(session: Session) -> None:
        pending = session.info.pop(_PENDING, None)
        for repository, invalidation in _merged(pending or []):
            repository.cache.invalidate(invalidation)

    def after_rollback(session: Session) -> None:
        # Fired for the real rollback of the whole transaction; a savepoint's rollback keeps what was noted
        # (clearing more than needed is safe, clearing less is not).
        if not session.in_nested_transaction():
            session.info.pop(_PENDING, None)

    event.listen(target, "after_flush", after_flush)
    event.listen(target, "do_orm_execute", do_orm_execute)
    event.listen(target, "after_commit", after_commit)
    event.listen(target, "after_rollback", after_rollback)


def _note(session: Session, repository: TrackedRepository, invalidation: Invalidation) -> None:
    session.info.setdefault(_PENDING, []).append((repository, invalidation))


def _written(session: Session) -> list[tuple[str, Any]]:
    """The flushed objects: ``("insert" | "update" | "delete", obj)``."""
    return [
        *(("insert", o) for o in session.new),
        *(("update", o) for o in session.dirty if session.is_modified(o)),
        *(("delete", o) for o in session.deleted),
    ]


def _repositories_of(repositories: list[TrackedRepository], cls: type[Any]) -> list[TrackedRepository]:
    return [r for r in repositories if issubclass(cls, r.model)]


def _repositories_of_statement(repositories: list[TrackedRepository], state: ORMExecuteState) -> list[Any]:
    mapper = state.bind_mapper
    if mapper is not None:
        return _repositories_of(repositories, mapper.class_)
    table = getattr(state.statement, "table", None)  # a Core update(table) / delete(table)
    return [r for r in repositories if table is not None and table in sa.inspect(r.model).tables]


def _row_invalidation(repository: TrackedRepository, kind: str, obj: Any) -> Invalidation:
    """The row's id, and its partition values before (none for an insert) and after (none for a delete)."""
    state = sa.inspect(obj)
    fields = sorted({f for names in repository.partitions.values() for f in names})
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for field in fields:
        history = state.attrs[field].history
        current = state.dict.get(field, _NO_VALUE)  # never a lazy load inside the flush
        after[field] = current
        if history.deleted:
            before[field] = history.deleted[0]
        else:  # unchanged; or set without its old value ever loaded, which is then unknown
            before[field] = _NO_VALUE if history.added else current
    records = [r for kind_ok, r in ((kind != "insert", before), (kind != "delete", after)) if kind_ok and r]
    # An attribute not loaded (expired) leaves its partition unknown: then every partition is cleared.
    complete = all(value is not _NO_VALUE for record in records for value in record.values())
    identity = state.mapper.primary_key_from_instance(obj)
    return Invalidation(
        repository.name,
        ids=[identity[0] if len(identity) == 1 else tuple(identity)],
        records=records if complete else [],
        partitions=repository.partitions,
        records_complete=complete,
    )


def _merged(pending: list[tuple[Any, Invalidation]]) -> list[tuple[Any, Invalidation]]:
    groups: dict[int, list[tuple[Any, Invalidation]]] = {}
    for item in pending:
        groups.setdefault(id(item[0]), []).append(item)
    merged = []
    for items in groups.values():
        repository = items[0][0]
        invalidations = [inv for _, inv in items]
        merged.append((repository, Invalidation(
            repository.name,
            ids=list(dict.fromkeys(i for inv in invalidations for i in inv.ids)),
            records=[r for inv in invalidations for r in inv.records],
            partitions=repository.partitions,
            records_complete=all(inv.records_complete for inv in invalidations),
            whole=any(inv.whole for inv in invalidations),
        )))
    return merged
