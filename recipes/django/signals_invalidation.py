"""Invalidate a repository's cache from Django's model signals.

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

Inside a transaction the entries are cleared at the write *and again at commit*: between the two, another
request can read the old committed row and cache it; the second clear removes it.

Not covered by signals: ``QuerySet.update()``, ``bulk_create()``, ``bulk_update()`` and raw SQL. After those,
call ``repository.invalidate_all()``.
"""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.db.models.signals import post_delete, post_save, pre_delete, pre_save

from cachekit import Invalidation

from .repository import ModelRepository, Row

__all__ = ["connect_invalidation", "disconnect_invalidation"]

# Where pre_save/pre_delete leave the old row for post_save/post_delete: on the instance itself, because
# the signals of one save() call share nothing else (and two instances may have the same pk).
_OLD_ROW = "_cachekit_old_row"
_UNKNOWN = object()
_SIGNALS = (("pre_save", pre_save), ("post_save", post_save), ("pre_delete", pre_delete), ("post_delete", post_delete))


def connect_invalidation(repository: ModelRepository) -> None:
    """Clear ``repository``'s entries whenever a row of its model is saved or deleted.

    Connecting the same repository twice is harmless (the receivers have a ``dispatch_uid``).
    """
    partition_fields = sorted({f for names in repository.partitions.values() for f in names})

    def remember_old_row(sender: type[models.Model], instance: models.Model, using: str, **kwargs: Any) -> None:
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


def disconnect_invalidation(repository: ModelRepository) -> None:
    """Undo :func:`connect_invalidation` (e.g. in a test that checks what happens without it)."""
    for name, signal in _SIGNALS:
        signal.disconnect(sender=repository.model, dispatch_uid=_uid(repository, name))


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
    repository.cache.invalidate(invalidation)
    if transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(lambda: repository.cache.invalidate(invalidation), using=using, robust=True)
