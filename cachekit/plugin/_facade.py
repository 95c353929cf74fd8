"""``resource.cache``: :class:`ResourceCache`, one :class:`~cachekit.CachePlugin` instance's cache of one resource.

The home of what the plugin does per resource: wrapping the read methods (:data:`READ_ACTIONS`) with
:func:`~cachekit.cached`, precise invalidation when the resource reports a change, keys (``key_for``), the
entry methods (``get``, ``set``, ``clear_all`` ...) and the warmers (``warm_item``, ``warm_page``,
``warm_partition`` ...). :mod:`cachekit.plugin` builds one per resource and re-exports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .._types import DEFAULT, TTL
from ..decorators import cached
from ..errors import ConfigurationError, KeyResolverError
from ..keys import resource_prefix, segment
from ..scopes import NAMESPACE_SCOPE, Invalidation
from ._options import page_arguments
from ._registry import register, unregister, unwrap

if TYPE_CHECKING:
    from ..cache import Cache
    from ..drivers import Driver
    from ..s3db import Change, Resource

__all__ = ["READ_ACTIONS", "ResourceCache"]


class _Plugin(Protocol):
    """What a facade reads of the :class:`~cachekit.CachePlugin` that built it (it never imports the plugin)."""

    @property
    def slug(self) -> str: ...
    @property
    def invalidation(self) -> str: ...

#: The resource methods the plugin caches, each under the key resolver of the same name.
READ_ACTIONS = ("get", "get_many", "exists", "list", "list_ids", "count", "page", "query", "get_from_partition",
                "get_all")
_ABSENT = object()


class ResourceCache:
    """``resource.cache``: one plugin instance's cache for one resource, with warmers and invalidation.

    The driver's own methods are on :attr:`driver` (``users.cache.driver.size()``); a name this object does not
    define is an :class:`AttributeError` naming that spelling, never a silent call of the driver.

    E.g.::

        users.cache.key_for("page", params={"offset": 0, "size": 25})
        users.cache.warm_page(offset=0, size=25, force_refresh=True)
        users.cache.invalidate(id="u1")
        users.cache.stats().hit_rate
    """

    def __init__(self, plugin: _Plugin, resource: Resource, cache: Cache) -> None:
        self.plugin, self.resource, self.namespace_cache = plugin, resource, cache
        self.slug = plugin.slug
        cache.declare_partitions(resource.name, resource.partitions)
        self._methods: dict[str, Any] = {}
        for action in READ_ACTIONS:
            method = getattr(resource, action, None)
            if callable(method):
                wrapper = cached(action=action, cache=cache, resource=resource.name)(method)
                self._methods[action] = wrapper
                setattr(resource, action, wrapper)
        if "count" in self._methods and resource.page_total is None:  # a page's total: the cached count
            resource.page_total = self._page_total
        self._listener = resource.on_change(self._on_change)
        register(resource, self)

    # -- identity --------------------------------------------------------------------------------------------

    @property
    def driver(self) -> Driver:
        """The underlying driver."""
        return self.namespace_cache.driver

    def get_driver(self) -> Driver:
        """The underlying driver."""
        return self.driver

    @property
    def driver_name(self) -> str:
        """The driver's class name, e.g. ``MemoryDriver``."""
        return type(self.driver).__name__

    # -- keys ------------------------------------------------------------------------------------------------

    def key_for(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
    ) -> str:
        """The key the read ``action`` with these arguments uses (arguments named as in the method).

        ``page`` also accepts ``offset`` (with ``size``), as the warmers do: it means ``page=offset // size + 1``.
        """
        method = self._method(action)
        arguments = dict(params or {})
        if partition is not None:
            arguments["partition"], arguments["partition_values"] = partition, partition_values
        if action == "page":
            arguments = page_arguments(arguments)
        return method.cache_key(**arguments)  # type: ignore[no-any-return]

    resolve = key_for

    def key_resolver(self) -> Callable[..., str]:
        """A function ``(action, params=None, partition=None, partition_values=None) -> key``."""
        return self.key_for

    # -- entries ---------------------------------------------------------------------------------------------

    def _own_key(self, key: str) -> str:
        # Keys from key_for are used as they are; other keys live under this resource and depend on its
        # generation, so clear_all() invalidates them too.
        cache = self.namespace_cache
        if key.startswith(cache.prefix):
            return key
        base = f"{self._resource_prefix()}custom/{key if cache.case_sensitive else key.lower()}"
        return cache._gens.key(base, (NAMESPACE_SCOPE, segment(self.resource.name, not cache.case_sensitive)))

    def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key`` (from :meth:`key_for`, or your own key, kept under this resource)."""
        return self.namespace_cache.get(self._own_key(key), default)

    def set(self, key: str, value: Any, ttl: TTL = DEFAULT) -> bool:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the plugin's TTL)."""
        return self.namespace_cache.set(self._own_key(key), value, ttl)

    def delete(self, key: str) -> bool:
        """Remove ``key``."""
        return self.namespace_cache.delete(self._own_key(key))

    def clear(self) -> int:
        """Remove every entry of this resource in this instance (other resources are untouched)."""
        return self.clear_all()

    def clear_all(self) -> int:
        """Remove every entry of this resource in this instance."""
        return self.namespace_cache.invalidate_resource(self.resource.name)

    def keys(self) -> list[str]:
        """This resource's keys that reads can still reach (see :meth:`cachekit.Cache.keys`)."""
        return self.namespace_cache.keys(self._resource_prefix())

    def stats(self) -> Any:
        """The namespace's :class:`~cachekit.CacheStats` (hits, misses, hit_rate ...)."""
        return self.namespace_cache.stats()

    # -- invalidation ----------------------------------------------------------------------------------------

    def invalidate(
        self, id: Any = None, *, partition: str | None = None, partition_values: Mapping[str, Any] | None = None
    ) -> int:
        """Clear entries: of one item and every aggregate it may appear in (``id=``); of one partition's
        aggregates only (``partition=``, ``partition_values=``); or of the whole resource (no argument)."""
        cache = self.namespace_cache
        if id is not None:
            return cache.invalidate(Invalidation(self.resource.name, ids=[id], partitions=self.resource.partitions))
        if partition is not None:
            fields = self.resource.partitions.get(partition)
            if fields is None:
                raise ConfigurationError(
                    f"resource {self.resource.name!r} has no partition {partition!r}; "
                    f"it has {sorted(self.resource.partitions)}"
                )
            unknown = sorted(set(partition_values or {}) - set(fields))
            if unknown:
                raise ConfigurationError(f"partition {partition!r} has the fields {list(fields)}, not {unknown}")
            if partition_values is not None and set(partition_values) != set(fields):
                partition_values = None  # some values only: every value combination of the partition
            return cache.invalidate_partition(self.resource.name, partition, partition_values)
        return self.clear_all()

    def _on_change(self, change: Change) -> None:
        cache = self.namespace_cache
        if change.everything or self.plugin.invalidation == "resource":
            cache.invalidate_resource(change.resource)
            return
        records = [r for r in (change.old, change.new) if r is not None]
        cache.invalidate(
            Invalidation(
                change.resource,
                ids=list(dict.fromkeys(r["id"] for r in records)),
                records=records,
                partitions=self.resource.partitions,
                records_complete=True,
            )
        )

    # -- warming ---------------------------------------------------------------------------------------------

    def _warm(self, action: str, force_refresh: bool, return_data: bool, **arguments: Any) -> Any:
        """Make sure the entry a read with these arguments uses is stored (whatever min_hits_before_store says)."""
        method = self._method(action)
        result = _ABSENT if force_refresh else self.namespace_cache.get(method.cache_key(**arguments), _ABSENT)
        if result is _ABSENT:
            result = method.refresh(**arguments)
        return result if return_data else None

    def warm_item(self, id: Any, *, force_refresh: bool = False, return_data: bool = False) -> Any:
        """Load one item into the cache (``force_refresh``: read the source even when cached)."""
        if id is None or id == "":
            raise ConfigurationError("warm_item needs an id")
        return self._warm("get", force_refresh, return_data, id=id)

    def warm_many(self, ids: Sequence[Any], *, force_refresh: bool = False, return_data: bool = False) -> Any:
        """Load ``get_many(ids)`` into the cache."""
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence) or not ids:
            raise ConfigurationError(f"warm_many needs a non-empty list of ids; got {ids!r}")
        return self._warm("get_many", force_refresh, return_data, ids=list(ids))

    def warm_list(self, *, force_refresh: bool = False, return_data: bool = False, **options: Any) -> Any:
        """Load ``list(**options)`` into the cache."""
        return self._warm("list", force_refresh, return_data, **options)

    def warm_count(self, *, force_refresh: bool = False, return_data: bool = False, **options: Any) -> Any:
        """Load ``count(**options)`` into the cache."""
        return self._warm("count", force_refresh, return_data, **options)

    def warm_query(
        self, filter: Mapping[str, Any], *, force_refresh: bool = False, return_data: bool = False, **options: Any
    ) -> Any:
        """Load ``query(filter, **options)`` into the cache."""
        return self._warm("query", force_refresh, return_data, filter=dict(filter), **options)

    def warm_page(self, *, force_refresh: bool = False, return_data: bool = False, **options: Any) -> Any:
        """Load one page: ``warm_page(offset=0, size=25)`` warms ``page(page=offset // size + 1, size=size)``."""
        return self._warm("page", force_refresh, return_data, **page_arguments(options))

    def warm_partition(
        self, partition: str, partition_values: Mapping[str, Any] | None = None, *, force_refresh: bool = False
    ) -> int:
        """Warm ``count`` and ``list`` of one partition value combination, or of every combination found
        (``partition_values=None``). Returns how many combinations were warmed."""
        fields = self.resource.partitions.get(partition)
        if fields is None:
            known = sorted(self.resource.partitions)
            raise ConfigurationError(f"resource {self.resource.name!r} has no partition {partition!r}; it has {known}")
        combos = [dict(partition_values)] if partition_values is not None else self._partition_combos(partition)
        for values in combos:
            for action in ("count", "list"):
                self._warm(action, force_refresh, False, partition=partition, partition_values=values)
        return len(combos)

    def warm(self, *, sample_size: int = 100, include_partitions: bool = True) -> dict[str, Any]:
        """Warm the first page (``sample_size`` items), the count, and every partition combination."""
        self.warm_page(offset=0, size=max(1, sample_size))
        self.warm_count()
        warmed = 0
        if include_partitions:
            warmed = sum(self.warm_partition(name) for name in self.resource.partitions)
        return {"resource": self.resource.name, "partitions_warmed": warmed}

    def _partition_combos(self, partition: str) -> list[dict[str, Any]]:
        documents = self._method("list").uncached()
        combos = {}
        for document in documents:
            values = self.resource.partition_values_of(document).get(partition)
            if values:
                combos[tuple(sorted(values.items()))] = values
        return list(combos.values())

    # -- plumbing --------------------------------------------------------------------------------------------

    def _method(self, action: str) -> Any:
        try:
            return self._methods[action]
        except KeyError:
            raise KeyResolverError(
                f"{self.resource.name!r} has no cached read {action!r}; it has {sorted(self._methods)}"
            ) from None

    def _resource_prefix(self) -> str:
        cache = self.namespace_cache
        return resource_prefix(cache.namespace, self.resource.name, case_sensitive=cache.case_sensitive)

    def _page_total(self, partition: str | None, partition_values: Mapping[str, Any] | None) -> int:
        count = self._methods["count"]
        if partition is None and partition_values is None:
            return int(count())  # the key of a plain count(), as callers write it
        return int(count(partition=partition, partition_values=partition_values))

    def _uninstall(self) -> None:
        if self.resource.page_total == self._page_total:
            self.resource.page_total = None
        self.resource.remove_change_listener(self._listener)
        for action, wrapper in self._methods.items():
            unwrap(self.resource, action, wrapper)
        unregister(self.resource, self)

    def get_memory_stats(self) -> dict[str, Any]:
        """The memory driver's use against its limit (s3db.js ``getMemoryStats()``); drivers without it raise."""
        stats = getattr(self.driver, "get_memory_stats", None)
        if stats is None:
            raise AttributeError(f"{type(self.driver).__name__} has no get_memory_stats() (a memory driver's)")
        return dict(stats())

    def __getattr__(self, name: str) -> Any:
        # Only names this class does not define get here: say where a driver's own attribute is.
        hint = ""
        if not name.startswith("_") and hasattr(self.namespace_cache.driver, name):
            hint = f"; the driver's is resource.cache.driver.{name}"
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}{hint}")

    def __repr__(self) -> str:
        return f"<ResourceCache {self.slug!r} resource={self.resource.name!r} driver={self.driver_name}>"

