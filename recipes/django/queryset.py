"""A QuerySet and Manager whose bulk writes clear what they touch: ``update()``, ``bulk_create()``,
``bulk_update()`` and ``delete()``.

Problem: ``QuerySet.update()``, ``bulk_create()`` and ``bulk_update()`` are how Django code changes many rows
at once, and they send no ``pre_save``/``post_save`` signals, so ``signals_invalidation.py`` never hears of
them and cached reads go stale.

Solution: give the model this manager. Each bulk write then tells cachekit what it changed, at commit inside a
transaction (like the signals), through the repository connected for the model::

    class Article(models.Model):
        ...
        objects = InvalidatingManager()

    Article.objects.filter(pk__in=[1, 2]).update(title="Edited")   # clears get(1), get(2), lists, counts
    Article.objects.filter(category="news").update(body="")        # ids unknown: clears every Article entry
    Article.objects.bulk_create([Article(title="A", category="news")])  # lists/counts of "news" only
    Article.objects.bulk_update(rows, ["category"])                 # one query for the old categories
    Article.objects.filter(category="sports").delete()              # one clear for all the deleted rows

What each clears:

- ``update()``: when the queryset is filtered by primary key only (``pk=`` or ``pk__in=`` a list), those
  ids, every list and count and every partition (the rows' partitions are not known without a query);
  otherwise every entry of the model. An update that changed no row clears nothing.
- ``bulk_create()``: the new ids (a cached "not found"), the lists and counts, and only the partitions of
  the new rows. With ``ignore_conflicts``/``update_conflicts``, or a backend that does not return the new
  ids, every entry of the model.
- ``bulk_update()``: the ids, and the partitions the rows were in (one query reads them) and are in after.
- ``delete()``: Django deletes row by row with signals (a model with receivers is never fast-deleted); the
  clears of all the rows (and of cascaded models with repositories) are sent merged, one per resource.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import models
from django.db.models.lookups import Exact, In

from cachekit import Invalidation

from .repository import ModelRepository, Row
from .signals_invalidation import batched_invalidation, invalidate_at_commit, repository_for

__all__ = ["InvalidatingManager", "InvalidatingQuerySet"]

# bulk_update() runs update() per batch; its own clear covers those, so theirs is skipped.
_INSIDE_BULK_UPDATE: contextvars.ContextVar[bool] = contextvars.ContextVar("cachekit_bulk_update", default=False)


class InvalidatingQuerySet(models.QuerySet[Any]):
    """A QuerySet whose ``update``/``bulk_create``/``bulk_update``/``delete`` clear the cache entries they touch.

    The repository is the one ``connect_invalidation()`` connected for the model; without one they only write.
    """

    def update(self, **kwargs: Any) -> int:
        """``QuerySet.update()``, then clear the updated ids (or the whole model when they are not known)."""
        repository = repository_for(self.model)
        ids = _pk_filter(self) if repository is not None else None
        updated = super().update(**kwargs)
        if repository is None or updated == 0 or _INSIDE_BULK_UPDATE.get():
            return updated
        if ids is None:
            invalidation = Invalidation(repository.name, whole=True)
        else:
            invalidation = Invalidation(repository.name, ids=ids, partitions=repository.partitions)
        invalidate_at_commit(repository, invalidation, self.db)
        return updated

    def bulk_create(self, objs: Iterable[models.Model], *args: Any, **kwargs: Any) -> list[models.Model]:
        """``QuerySet.bulk_create()``, then clear the new ids, the lists and counts, the new rows' partitions."""
        created = super().bulk_create(objs, *args, **kwargs)
        repository = repository_for(self.model)
        if repository is None or not created:
            return created
        ids = [obj.pk for obj in created]
        if kwargs.get("ignore_conflicts") or kwargs.get("update_conflicts") or None in ids:
            # Rows may have been skipped or overwritten, or their ids are unknown: clear the whole model.
            invalidation = Invalidation(repository.name, whole=True)
        else:
            fields = _partition_fields(repository)
            invalidation = Invalidation(
                repository.name,
                ids=ids,
                records=[_row_of(obj, fields) for obj in created] if fields else [],
                partitions=repository.partitions,
                records_complete=True,  # inserts: there is no old row
            )
        invalidate_at_commit(repository, invalidation, self.db)
        return created

    def bulk_update(self, objs: Iterable[models.Model], fields: Sequence[str], batch_size: int | None = None) -> int:
        """``QuerySet.bulk_update()``, then clear the ids and the partitions the rows were in and are in now."""
        objs = list(objs)
        repository = repository_for(self.model)
        if repository is None or not objs:
            return super().bulk_update(objs, fields, batch_size=batch_size)
        ids = [obj.pk for obj in objs]
        partition_fields = _partition_fields(repository)
        old_rows: dict[Any, Row] = {}
        if partition_fields:
            # The rows as stored now, before the update: the partitions they leave.
            found = self.model._default_manager.using(self.db).filter(pk__in=ids).values("pk", *partition_fields)
            old_rows = {row.pop("pk"): row for row in found}
        token = _INSIDE_BULK_UPDATE.set(True)
        try:
            updated = super().bulk_update(objs, fields, batch_size=batch_size)
        finally:
            _INSIDE_BULK_UPDATE.reset(token)
        records: list[Row] = []
        for obj in objs:
            old = old_rows.get(obj.pk)
            if old is None:
                continue
            records.append(old)
            # After the update: the stored row, with the updated fields taken from the object.
            records.append({f: obj.serializable_value(f) if f in fields else old[f] for f in partition_fields})
        invalidation = Invalidation(
            repository.name, ids=ids, records=records, partitions=repository.partitions, records_complete=True
        )
        invalidate_at_commit(repository, invalidation, self.db)
        return updated

    def delete(self) -> tuple[int, dict[str, int]]:
        """``QuerySet.delete()``: the rows' signals clear them; their clears are sent merged, once."""
        with batched_invalidation():
            return super().delete()


#: ``objects = InvalidatingManager()`` on a model whose repository is connected.
InvalidatingManager = models.Manager.from_queryset(InvalidatingQuerySet)


def _partition_fields(repository: ModelRepository) -> list[str]:
    return sorted({f for names in repository.partitions.values() for f in names})


def _row_of(obj: models.Model, fields: list[str]) -> Row:
    return {f: obj.serializable_value(f) for f in fields}


def _pk_filter(queryset: models.QuerySet[Any]) -> list[Any] | None:
    """The primary keys a queryset is filtered to, when its only filter is ``pk=value`` or ``pk__in=[...]``.

    ``None`` for anything else (other filters, a subquery, a slice): then the updated rows are not known
    without a query, and the caller clears the whole model.
    """
    query = queryset.query
    where = query.where
    if query.is_sliced or where.negated or len(where.children) != 1:
        return None
    lookup = where.children[0]
    if not isinstance(lookup, (Exact, In)) or getattr(lookup.lhs, "target", None) != queryset.model._meta.pk:
        return None
    if isinstance(lookup, Exact):
        values = [lookup.rhs]
    elif isinstance(lookup.rhs, (list, tuple, set, frozenset)):
        values = list(lookup.rhs)
    else:
        return None
    if any(hasattr(v, "resolve_expression") or hasattr(v, "as_sql") for v in values):
        return None
    return values
