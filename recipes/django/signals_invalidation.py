"""Invalidate a repository's cache from Django's model signals, at commit.

Problem: rows change in many places (views, forms, the admin, management commands, the shell), and
remembering to clear the cache at each of them is how stale pages happen. Clearing everything on every save
throws away entries that no write touched.

Solution: listen to ``pre_save``/``post_save`` and ``pre_delete``/``post_delete`` for the model, and tell cachekit
what each write changed: the row's id, and the partitions its *old* and *new* values fall in. ``pre_save``
reads the old values from the database (only the partition fields, only when the model has partitions), so
moving an article from "news" to "sports" clears both categories' lists and counts and no other category's.

Call :func:`connect_invalidation` once per repository, from your ``AppConfig.ready()``::

    class BlogConfig(AppConfig):
        name = "blog"

        def ready(self) -> None:
            from .repositories import articles
            connect_invalidation(articles)

When the clear runs: in autocommit mode right after the write (which has committed by then). Inside a
transaction (``atomic()``) at its commit, with ``transaction.on_commit``: before the commit, other requests
still read the old committed row, and a rollback (of the transaction or of a savepoint) drops the clear
with the writes it was for. Reads inside the transaction bypass the cache (see ``repository.py``). Under
Django's ``TestCase``, whose transactions never commit, the clear runs at the write as well.

``QuerySet.update()``, ``bulk_create()`` and ``bulk_update()`` send no signals: give the model the recipe's
``InvalidatingManager`` (``queryset.py``). Raw SQL: call ``repository.invalidate_all()``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from django.db import connections, models, transaction
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from cachekit import Invalidation

from .repository import ModelRepository, Row, in_transaction

__all__ = [
    "batched_invalidation",
    "connect_invalidation",
    "disconnect_invalidation",
    "invalidate_at_commit",
    "repository_for",
]

# Where pre_save/pre_delete leave the old row for post_save/post_delete: on the instance itself, because
# the signals of one save() call share nothing else (and two instances may have the same pk).
_OLD_ROW = "_cachekit_old_row"
_UNKNOWN = object()
_SIGNALS = (("pre_save", pre_save), ("post_save", post_save), ("pre_delete", pre_delete), ("post_delete", post_delete))
# The connected repository of each model, for the bulk operations of queryset.py.
_REPOSITORIES: dict[type[models.Model], ModelRepository] = {}
# While a bulk operation runs, the invalidations its rows' signals asked for, sent as one at the end.
_BATCH: contextvars.ContextVar[list[tuple[ModelRepository, Invalidation, str]] | None] = contextvars.ContextVar(
    "cachekit_invalidation_batch", default=None
)


def connect_invalidation(repository: ModelRepository) -> None:
    """Clear ``repository``'s entries whenever a row of its model is saved or deleted.

    Connecting the same repository twice is harmless (the receivers have a ``dispatch_uid``).
    """
    partition_fields = sorted({f for names in repository.partitions.values() for f in names})

    def remember_old_row(sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
        if isinstance(kwargs.get("origin"), models.QuerySet):
            # QuerySet.delete() loaded the instance from the database just now: it is the old row.
            instance.__dict__[_OLD_ROW] = _new_row(instance, partition_fields) if partition_fields else None
            return
        instance.__dict__[_OLD_ROW] = _old_row(sender, instance, partition_fields, using)

    def after_save(sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
        old = instance.__dict__.pop(_OLD_ROW, _UNKNOWN)
        _invalidate(repository, instance.pk, old, _new_row(instance, partition_fields), using)

    def after_delete(sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
        old = instance.__dict__.pop(_OLD_ROW, _UNKNOWN)
        _invalidate(repository, instance.pk, old, None, using)

    receivers = {"pre_save": remember_old_row, "post_save": after_save,
                 "pre_delete": remember_old_row, "post_delete": after_delete}
    for name, signal in _SIGNALS:
        # weak=False: the receivers are closures that nothing else references.
        signal.connect(receivers[name], sender=repository.model, weak=False, dispatch_uid=_uid(repository, name))
    _REPOSITORIES[repository.model] = repository


def disconnect_invalidation(repository: ModelRepository) -> None:
    """Undo :func:`connect_invalidation` (e.g. in a test that checks what happens without it)."""
    for name, signal in _SIGNALS:
        signal.disconnect(sender=repository.model, dispatch_uid=_uid(repository, name))
    if _REPOSITORIES.get(repository.model) is repository:
        del _REPOSITORIES[repository.model]


def repository_for(model: type[models.Model]) -> ModelRepository | None:
    """The repository connected for ``model`` (or its concrete parent), if any."""
    return _REPOSITORIES.get(model) or _REPOSITORIES.get(model._meta.concrete_model)


def invalidate_at_commit(repository: ModelRepository, invalidation: Invalidation, using: str) -> None:
    """Send ``invalidation`` now in autocommit mode, at commit inside a transaction; dropped on rollback."""
    batch = _BATCH.get()
    if batch is not None:
        batch.append((repository, invalidation, using))
        return
    if not in_transaction(using) or not connections[using].in_atomic_block:
        # Autocommit: the write has committed. Autocommit turned off by hand: Django has no commit hook there,
        # so the clear runs at the write (prefer atomic(), whose commit is known).
        repository.cache.invalidate(invalidation)
        return
    # robust: a failing clear must not turn a committed transaction into an exception (cachekit already
    # fails open and retries, so this is a second belt).
    transaction.on_commit(lambda: repository.cache.invalidate(invalidation), using=using, robust=True)
    if _inside_test_case(using):
        # Django's TestCase never commits (its on_commit callbacks only run under captureOnCommitCallbacks), and
        # Django itself wraps delete() and bulk writes in atomic(): clear now too, as autocommit would.
        repository.cache.invalidate(invalidation)


@contextlib.contextmanager
def batched_invalidation() -> Iterator[None]:
    """Collect the invalidations sent inside the block and send them merged, one per resource, at its end."""
    if _BATCH.get() is not None:  # already batching: the outer block sends them
        yield
        return
    batch: list[tuple[ModelRepository, Invalidation, str]] = []
    token = _BATCH.set(batch)
    try:
        yield
    finally:
        _BATCH.reset(token)
        for repository, invalidation, using in _merged(batch):
            invalidate_at_commit(repository, invalidation, using)


def _merged(batch: list[tuple[ModelRepository, Invalidation, str]]) -> list[tuple[ModelRepository, Invalidation, str]]:
    groups: dict[tuple[int, str], list[tuple[ModelRepository, Invalidation, str]]] = {}
    for item in batch:
        groups.setdefault((id(item[0]), item[2]), []).append(item)
    merged = []
    for items in groups.values():
        repository, first, using = items[0]
        invalidations = [inv for _, inv, _ in items]
        merged.append((repository, Invalidation(
            first.resource,
            ids=list(dict.fromkeys(i for inv in invalidations for i in inv.ids)),
            records=[r for inv in invalidations for r in inv.records],
            partitions=first.partitions,
            records_complete=all(inv.records_complete for inv in invalidations),
            whole=any(inv.whole for inv in invalidations),
        ), using))
    return merged


def _inside_test_case(using: str) -> bool:
    return any(getattr(block, "_from_testcase", False) for block in connections[using].atomic_blocks)


def _uid(repository: ModelRepository, signal_name: str) -> str:
    return f"cachekit:{repository.name}:{signal_name}"


def _old_row(model: type[models.Model], instance: models.Model, fields: list[str], using: str) -> Row | None:
    """The partition fields of the row as the database has it now; ``None`` for a row not yet stored."""
    if not fields or instance.pk is None:
        return None
    return model._default_manager.using(using).filter(pk=instance.pk).values(*fields).first()


def _new_row(instance: models.Model, fields: list[str]) -> Row:
    # serializable_value() gives a foreign key's id rather than fetching the related object.
    return {f: instance.serializable_value(f) for f in fields}


def _invalidate(repository: ModelRepository, pk: Any, old: Any, new: Row | None, using: str) -> None:
    records = [r for r in (old, new) if isinstance(r, dict) and r]
    invalidation = Invalidation(
        repository.name,
        ids=[pk],
        records=records,
        partitions=repository.partitions,
        # Without the old row (pre_save did not run) the partitions it left are unknown: clear them all.
        records_complete=old is not _UNKNOWN,
    )
    invalidate_at_commit(repository, invalidation, using)
