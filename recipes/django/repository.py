"""Cached reads over a Django model manager.

Problem: the same rows are read on every request (a detail page, the front-page list, a count in the
navigation bar), and each read is a query. Django's per-view cache stores whole responses and cannot tell
which of them a saved row affects; you want to cache the *reads* and clear exactly the entries a write changes.

Solution: put the reads in a repository whose ``get``/``list``/``count`` are ``@cached``. The rows are cached as
plain dicts (``QuerySet.values()``), never as model instances: a dict round-trips through any driver, and a
cached instance would carry a stale ``_state`` into the next request. Writes stay ordinary ORM calls;
``signals_invalidation.py`` clears what they change.

E.g.::

    class ArticleRepository(ModelRepository):
        model = Article
        partitions = {"by_category": ["category"]}

    articles = ArticleRepository()
    articles.get(1)                                         # {'id': 1, 'title': ..., ...} or None
    articles.list(limit=20, partition="by_category", partition_values={"category": "news"})
    articles.count()

The :class:`cachekit.Cache` is built on first use from ``settings.CACHEKIT`` (see ``settings_snippet.py``).

Inside a transaction the application opened (``atomic()``, or autocommit turned off) the reads go straight to
the database, neither reading nor storing cache entries: the transaction must see its own writes, and what it
sees may be rolled back. Django's ``TestCase`` wraps each test in transactions of its own; those do not count.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import connections, models, router

from cachekit import Cache, cached

__all__ = ["ModelRepository", "Row", "Rows", "get_cache", "in_transaction", "reset_cache"]

#: One cached row: field name -> value, as ``QuerySet.values()`` gives it.
Row = dict[str, Any]
Rows = list[Row]

_lock = threading.Lock()
_cache: Cache | None = None


def get_cache() -> Cache:
    """The process's :class:`~cachekit.Cache`, built from ``settings.CACHEKIT`` on first use.

    Built lazily, not at import: settings may not be final when this module is imported, tests override
    them, and ``manage.py migrate`` or ``check`` should not need a working cache configuration.
    """
    global _cache
    cache = _cache
    if cache is None:
        with _lock:
            if _cache is None:
                _cache = _build_cache(getattr(settings, "CACHEKIT", {}))
            cache = _cache
    return cache


def reset_cache() -> None:
    """Close the cache; the next :func:`get_cache` builds a new one from the settings then in force.

    Runs by itself when a test changes ``CACHEKIT`` with ``override_settings``. Call it in a test's ``setUp``
    too: the test database rolls back after each test, the cache does not.
    """
    global _cache
    with _lock:
        old, _cache = _cache, None
    if old is not None:
        old.close()


def _build_cache(options: Mapping[str, Any]) -> Cache:
    if not isinstance(options, Mapping):
        raise ImproperlyConfigured(f"settings.CACHEKIT must be a dict of cachekit.Cache arguments; got {options!r}")
    try:
        return Cache(**options)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"settings.CACHEKIT is invalid: {exc}") from exc


def _reset_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "CACHEKIT":
        reset_cache()


setting_changed.connect(_reset_on_setting_changed, dispatch_uid="cachekit-recipe-reset-cache")


def in_transaction(using: str) -> bool:
    """Whether the connection ``using`` is inside a transaction the application opened.

    That is an ``atomic()`` block, or autocommit turned off. The blocks Django's ``TestCase`` wraps each test in
    are left out (Django's own ``durable=True`` check does the same): a test then behaves like autocommit.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)
    # Not connected yet: autocommit is whatever settings say (on by default), and this read must not connect.
    return connection.connection is not None and not connection.autocommit


class _UncachedInTransactions:
    """Around a ``@cached`` read: inside a transaction, call it with ``skip_cache=True``.

    The read then neither returns an entry (the transaction may have changed the row) nor stores its result
    (which may hold uncommitted data that a rollback would make false). The cached read's helpers
    (``.cache_key``, ``.uncached``, ``.invalidate``, ``.refresh``) stay reachable: ``articles.get.cache_key(1)``.
    """

    def __init__(self, read: Any) -> None:
        self.read = read
        self.__doc__ = read.__doc__

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        bound = self.read.__get__(instance, owner)
        return bound if instance is None else _TransactionAwareRead(bound, instance)


class _TransactionAwareRead:
    def __init__(self, bound: Any, repository: ModelRepository) -> None:
        self.bound = bound
        self.repository = repository

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.repository.in_transaction():
            kwargs["skip_cache"] = True
        return self.bound(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bound, name)


class ModelRepository:
    """Cached ``get``/``list``/``count`` over ``model._default_manager``.

    E.g.::

        class ArticleRepository(ModelRepository):
            model = Article
            partitions = {"by_category": ["category"]}   # optional: lists/counts per category

        ArticleRepository().count(partition="by_category", partition_values={"category": "news"})

    Subclasses set :attr:`model`, and optionally :attr:`fields`, :attr:`partitions` and :attr:`ordering`.
    Ids are hashed with their type (``get(1)`` and ``get("1")`` are different entries, and signals invalidate
    ``instance.pk``): pass ids as the model's pk type, e.g. with an ``<int:pk>`` URL converter.
    """

    #: The model whose rows are read.
    model: ClassVar[type[models.Model]]
    #: The fields a cached row holds (``values()`` names); empty: every concrete field.
    fields: ClassVar[Sequence[str]] = ()
    #: Named groups of fields that lists and counts can be scoped to: ``{"by_category": ["category"]}``.
    #: A write then clears only the partitions its old and new row fall in.
    partitions: ClassVar[Mapping[str, Sequence[str]]] = {}
    #: The order of ``list()``; keep it total (end with the pk) so pages are stable.
    ordering: ClassVar[Sequence[str]] = ("pk",)

    @property
    def name(self) -> str:
        """The resource name in cache keys: the model's ``app_label.model_name``."""
        return self.model._meta.label_lower

    @property
    def cache(self) -> Cache:
        """The cache ``@cached`` reads through (looked up on each call, so ``reset_cache()`` takes effect)."""
        return get_cache()

    def row_fields(self) -> list[str]:
        """The field names a cached row holds."""
        return list(self.fields) or [f.attname for f in self.model._meta.concrete_fields]

    def in_transaction(self) -> bool:
        """Whether reads of this model run inside a transaction the application opened (then uncached)."""
        return in_transaction(router.db_for_read(self.model))

    @_UncachedInTransactions
    @cached(action="get")
    def get(self, id: Any) -> Row | None:
        """The row with primary key ``id``, or ``None`` (cached too, so a missing row is not queried again)."""
        return self._queryset().filter(pk=id).values(*self.row_fields()).first()

    @_UncachedInTransactions
    @cached(action="list")
    def list(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
    ) -> Rows:
        """Rows in :attr:`ordering`, ``offset`` then at most ``limit``; within one partition when given."""
        rows = self._rows(partition, partition_values).order_by(*self.ordering)
        end = None if limit is None else offset + limit
        return [dict(row) for row in rows[offset:end]]

    @_UncachedInTransactions
    @cached(action="count")
    def count(self, *, partition: str | None = None, partition_values: Mapping[str, Any] | None = None) -> int:
        """How many rows there are (in one partition when given)."""
        return self._rows(partition, partition_values).count()

    def invalidate_all(self) -> int:
        """Clear every entry of this model: after raw SQL, or a write from outside Django.

        ``QuerySet.update()``, ``bulk_create()`` and ``bulk_update()`` through the recipe's
        ``InvalidatingManager`` (``queryset.py``) clear what they touch by themselves.
        """
        return self.cache.invalidate_resource(self.name)

    def partition_for(self, values: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
        """The first partition whose fields all appear in ``values`` (e.g. a query string), and its values."""
        for name, names in self.partitions.items():
            if names and all(f in values for f in names):
                return name, {f: values[f] for f in names}
        return None, None

    def _queryset(self) -> models.QuerySet[Any]:
        return self.model._default_manager.all()

    def _rows(self, partition: str | None, values: Mapping[str, Any] | None) -> models.QuerySet[Any]:
        rows = self._queryset().values(*self.row_fields())
        if partition is None:
            return rows
        names = self.partitions.get(partition)
        if names is None:
            raise ValueError(f"unknown partition {partition!r} of {self.name}; declared: {sorted(self.partitions)}")
        if not values or set(values) != set(names):
            raise ValueError(f"partition {partition!r} needs partition_values for {list(names)}; got {values!r}")
        return rows.filter(**values)
