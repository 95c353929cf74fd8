"""``CachePlugin``: caching for every resource of a :class:`cachekit.s3db.Database`, installed in one call.

At install the plugin wraps each resource's read methods with :func:`~cachekit.cached` (keys from the resolver
registry) and listens to the resource's changes: every write (``insert``, ``insert_many``, ``update``,
``patch``, ``replace``, ``upsert``, ``delete``, ``delete_many``, ``delete_all``) reports the document before
and after it, so the plugin clears exactly that item's entries, the resource's aggregates outside partitions,
and the aggregates of the partitions the old and new document fall in; nothing of other partitions or other
resources.

Several instances stack, each with its own key namespace and slug (``cache``, ``cache--hot-path``). The first
installed instance owns ``resource.cache``; every instance is reachable by its slug:
``resource.get_cache_namespace("cache--hot-path")``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._build import check_retries
from ._types import DEFAULT, TTL, Clock, normalize_ttl
from .decorators import cached
from .drivers import Driver, resolve_driver_class
from .errors import ConfigurationError, KeyResolverError
from .keys import resource_prefix, segment
from .namespace import DEFAULT_TTL, NAMESPACE_OPTIONS, Cache
from .policies import parse_method_policies
from .scopes import NAMESPACE_SCOPE, Invalidation

if TYPE_CHECKING:
    from .s3db import Change, Database, Resource

__all__ = ["READ_ACTIONS", "CachePlugin", "ResourceCache", "slugify"]

#: The resource methods the plugin caches, each under the key resolver of the same name.
READ_ACTIONS = ("get", "get_many", "exists", "list", "list_ids", "count", "page", "query", "get_from_partition",
                "get_all")
_BASE_SLUG = "cache"
_ABSENT = object()
_STRATEGIES = ("write-through", "lazy-promotion")


def slugify(text: str) -> str:
    """Lower case, runs of characters other than ``[a-z0-9]`` become one ``-``, no ``-`` at either end."""
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")


class CachePlugin:
    """Caches the reads of every resource of an s3db database and invalidates them on writes.

    E.g.::

        from cachekit import CachePlugin
        from cachekit.s3db import Database

        db = Database.connect("s3://KEY:SECRET@my-bucket/app?endpoint=http://127.0.0.1:5055", create_bucket=True)
        users = db.create_resource("users", partitions={"by_region": ["region"]})
        plugin = CachePlugin(driver="memory", ttl=300,
                             method_policies={"get": {"ttl": 30}, "get_all": False})
        db.use_plugin(plugin)
        users.insert({"id": "u1", "name": "Ada", "region": "eu"})
        users.count()           # from S3, then from the cache
        users.cache.stats()
        db.close()

    :param driver: ``"memory"``, ``"filesystem"``, ``"redis"``, ``"s3"``, ``"null"``, a ``"module:Class"`` path
        or a driver instance. The S3 driver defaults to the database's client and bucket.
    :param drivers: tiers for a multi-tier cache, fastest first (see :class:`~cachekit.Cache`).
    :param ttl: default TTL in seconds or a ``timedelta`` (``None``: no expiry); default 300 s.
    :param max_size: entry limit of the memory driver (shorthand for ``config={"max_size": ...}``).
    :param config: driver and namespace options, as for :class:`~cachekit.Cache`.
    :param namespace: isolates this instance's keys; its slug is ``cache--<namespace>``.
    :param include: cache only these resources (``plg_`` resources too, when named here).
    :param exclude: never cache these resources.
    :param method_policies: per read method: ``True``/``False`` or a policy dict (see
        :class:`~cachekit.MethodPolicy`).
    :param promote_on_hit: multi-tier: copy lower-tier hits into faster tiers.
    :param strategy: multi-tier: ``"write-through"`` or ``"lazy-promotion"``.
    :param partition_aware: with ``driver="filesystem"``, keep a folder per resource and partition.
    :param invalidation: ``"precise"`` (default): a write clears its items, the aggregates and the partitions
        it touched; ``"resource"``: every write clears all of the resource's entries (the original plugin's
        behaviour; simpler, with a lower hit rate).
    :param retry_attempts: tries for each invalidation (default 3).
    :param retry_delay: seconds before the first retry, doubled each time (default 0.05).
    :param clock: wall clock for TTLs; tests pass a fake one.
    """

    def __init__(
        self,
        *,
        driver: str | Driver = "memory",
        drivers: Sequence[Mapping[str, Any] | Driver] | None = None,
        ttl: TTL = DEFAULT_TTL,
        max_size: int | None = None,
        config: Mapping[str, Any] | None = None,
        namespace: str | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        method_policies: Mapping[str, object] | None = None,
        promote_on_hit: bool = True,
        strategy: str = "write-through",
        partition_aware: bool = False,
        invalidation: str = "precise",
        retry_attempts: int = 3,
        retry_delay: float = 0.05,
        clock: Clock | None = None,
        **unknown_options: Any,
    ) -> None:
        if unknown_options:
            raise ConfigurationError(
                f"CachePlugin got unknown options {sorted(unknown_options)}; see help(CachePlugin) for the options"
            )
        self.ttl = normalize_ttl(ttl)
        self.driver_option = _check_driver(driver, drivers, partition_aware)
        self.drivers_option = list(drivers) if drivers is not None else None
        self.config = _check_config(config, max_size, self.driver_option, drivers)
        _check_driver_options(self.driver_option, self.config)
        self.include = _names("include", include) if include is not None else None
        self.exclude = _names("exclude", exclude or ())
        parse_method_policies(method_policies)  # validate now, not at install
        self.method_policies = dict(method_policies or {})
        check_retries(retry_attempts, retry_delay)
        unknown = sorted(set(self.method_policies) - set(READ_ACTIONS))
        if unknown:
            raise ConfigurationError(f"method_policies names unknown read methods {unknown}; use {list(READ_ACTIONS)}")
        if invalidation not in ("precise", "resource"):
            raise ConfigurationError(f"invalidation must be 'precise' or 'resource'; got {invalidation!r}")
        self.invalidation = invalidation
        self.promote_on_hit = bool(promote_on_hit)
        self.strategy = _check_strategy(strategy)
        self.retry_attempts, self.retry_delay = retry_attempts, retry_delay
        self.clock = clock
        self._explicit_namespace = namespace is not None
        self.namespace = _check_plugin_namespace(namespace)
        self.database: Database | None = None
        self.cache: Cache | None = None
        self.stopped = False
        self._facades: dict[str, ResourceCache] = {}

    # -- identity --------------------------------------------------------------------------------------------

    @property
    def slug(self) -> str:
        """``cache``, or ``cache--<namespace>`` (lower case, other characters become ``-``)."""
        return f"{_BASE_SLUG}--{slugify(self.namespace)}" if self.namespace else _BASE_SLUG

    def __repr__(self) -> str:
        state = "installed" if self.database is not None else "not installed"
        return f"<CachePlugin {self.slug!r} {state}>"

    # -- lifecycle -------------------------------------------------------------------------------------------

    def install(self, database: Database, name: str | None = None) -> None:
        """Wrap every cacheable resource of ``database``, now and when created later (``db.use_plugin`` calls it).

        :param name: the instance name given to ``db.use_plugin(plugin, name)``; it becomes the namespace when
            none was given (``"cache_hot"`` -> slug ``cache--cache-hot``).
        :raises ConfigurationError: installed twice, or another installed instance already has this slug.
        """
        if self.database is not None:
            raise ConfigurationError(f"{self!r} is already installed; create another CachePlugin for another database")
        if name is not None and not self._explicit_namespace and slugify(name) not in ("", _BASE_SLUG):
            self.namespace = _check_plugin_namespace(name)
        taken = [
            p
            for p in getattr(database, "plugins", [])
            if isinstance(p, CachePlugin) and p is not self and not p.stopped and p.slug == self.slug
        ]
        if taken:
            raise ConfigurationError(
                f"a CachePlugin with slug {self.slug!r} is already installed on this database; give this one a "
                "namespace (CachePlugin(namespace='hot-path')) or a name (db.use_plugin(plugin, 'cache_hot'))"
            )
        self.cache = self._build_cache(database)
        self.database = database
        for resource in database.resources.values():
            self._install_on(resource)
        database.on_resource_created(self._install_on)

    def stop(self) -> None:
        """Unwrap the resources, stop listening to their changes and close the driver(s)."""
        for facade in list(self._facades.values()):
            facade._uninstall()
        self._facades.clear()
        if self.cache is not None and not self.stopped:
            self.cache.close()
        self.stopped = True  # resources created from now on are left alone; stop() twice is a no-op

    def _build_cache(self, database: Database) -> Cache:
        config = dict(self.config)
        tiers = None
        if self.drivers_option is not None:
            tiers = [_with_database_defaults(t, database, self.slug) for t in self.drivers_option]
        elif self.driver_option == "s3":
            config = _s3_defaults(config, database, self.slug)
        return Cache(
            self.driver_option,
            namespace=self.slug,
            ttl=self.ttl,
            config=config,
            drivers=tiers,
            promote_on_hit=self.promote_on_hit,
            strategy=self.strategy,
            method_policies=self.method_policies,
            retry_attempts=self.retry_attempts,
            retry_delay=self.retry_delay,
            clock=self.clock,
        )

    def _should_cache(self, name: str) -> bool:
        if name in self.exclude:
            return False
        if self.include is not None:
            return name in self.include
        return not name.startswith("plg_")

    def _install_on(self, resource: Resource) -> None:
        if self.cache is None or self.stopped or resource.name in self._facades:
            return
        if not self._should_cache(resource.name):
            return
        self._facades[resource.name] = ResourceCache(self, resource, self.cache)

    # -- management ------------------------------------------------------------------------------------------

    @property
    def driver(self) -> Driver:
        """The driver this instance built at install."""
        return self._installed().driver

    def get_cache_stats(self) -> dict[str, Any]:
        """``{"driver": class name, "size": entries, "keys": [...], "stats": {...}}`` for this instance."""
        cache = self._installed()
        keys = sorted(cache.keys())
        stats = cache.stats().as_dict()
        return {"driver": type(cache.driver).__name__, "size": len(keys), "keys": keys, "stats": stats}

    def clear_all_cache(self) -> int:
        """Clear this instance's entries of every resource."""
        return self._installed().clear()

    def resource_cache(self, name: str) -> ResourceCache:
        """The facade of one wrapped resource."""
        try:
            return self._facades[name]
        except KeyError:
            cached_names = sorted(self._facades)
            message = f"{self.slug} does not cache a resource named {name!r}; it caches {cached_names}"
            raise LookupError(message) from None

    def _installed(self) -> Cache:
        if self.cache is None:
            raise ConfigurationError(f"{self!r} is not installed yet: call db.use_plugin(plugin) first")
        return self.cache


class ResourceCache:
    """``resource.cache``: one plugin instance's cache for one resource, with warmers and invalidation.

    Names it does not define reach the driver (``users.cache.get_memory_stats()``).

    E.g.::

        users.cache.key_for("page", params={"offset": 0, "size": 25})
        users.cache.warm_page(offset=0, size=25, force_refresh=True)
        users.cache.invalidate(id="u1")
        users.cache.stats().hit_rate
    """

    def __init__(self, plugin: CachePlugin, resource: Resource, cache: Cache) -> None:
        self.plugin, self.resource, self.namespace_cache = plugin, resource, cache
        self.slug = plugin.slug
        cache.declare_partitions(resource.name, resource.partitions)
        self._methods: dict[str, Any] = {}
        for action in READ_ACTIONS:
            method = getattr(resource, action, None)
            if callable(method):
                wrapper = cached(action=action, namespace=cache, resource=resource.name)(method)
                self._methods[action] = wrapper
                setattr(resource, action, wrapper)
        self._listener = resource.on_change(self._on_change)
        _register(resource, self)

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
            arguments = _page_arguments(arguments)
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
        return self._warm("page", force_refresh, return_data, **_page_arguments(options))

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

    def _uninstall(self) -> None:
        self.resource.remove_change_listener(self._listener)
        for action, wrapper in self._methods.items():
            _unwrap(self.resource, action, wrapper)
        _unregister(self.resource, self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.namespace_cache.driver, name)

    def __repr__(self) -> str:
        return f"<ResourceCache {self.slug!r} resource={self.resource.name!r} driver={self.driver_name}>"


# -- per-resource registry: resource.cache, get_cache_driver(slug), ... -------------------------------------------

_REGISTRY_ATTR = "_cachekit_instances"


def _register(resource: Resource, facade: ResourceCache) -> None:
    instances: dict[str, ResourceCache] | None = getattr(resource, _REGISTRY_ATTR, None)
    if instances is None:
        instances = {}
        setattr(resource, _REGISTRY_ATTR, instances)
        _install_accessors(resource, instances)
    instances[facade.slug] = facade
    if not hasattr(resource, "cache") or getattr(resource, "cache", None) is None:
        resource.cache = facade  # type: ignore[attr-defined]  # the first installed instance owns it


def _unregister(resource: Resource, facade: ResourceCache) -> None:
    instances: dict[str, ResourceCache] = getattr(resource, _REGISTRY_ATTR, {})
    instances.pop(facade.slug, None)
    if getattr(resource, "cache", None) is facade:
        resource.cache = next(iter(instances.values()), None)  # type: ignore[attr-defined]


def _install_accessors(resource: Resource, instances: dict[str, ResourceCache]) -> None:
    def namespace(slug: str | None = None) -> ResourceCache:
        if slug is None:
            owner: ResourceCache | None = getattr(resource, "cache", None)
            if owner is None:
                raise LookupError(f"no cache is installed on resource {resource.name!r}")
            return owner
        try:
            return instances[slug]
        except KeyError:
            raise LookupError(
                f"no cache instance {slug!r} on resource {resource.name!r}; installed: {sorted(instances)}"
            ) from None

    def driver(slug: str | None = None) -> Driver:
        return namespace(slug).driver

    def key_resolver(slug: str | None = None) -> Callable[..., str]:
        return namespace(slug).key_resolver()

    def cache_key_for(action: str, params: Mapping[str, Any] | None = None, **scope: Any) -> str:
        return namespace().key_for(action, params, **scope)

    resource.get_cache_namespace = namespace  # type: ignore[attr-defined]
    resource.get_cache_driver = driver  # type: ignore[attr-defined]
    resource.get_cache_key_resolver = key_resolver  # type: ignore[attr-defined]
    resource.cache_key_for = cache_key_for  # type: ignore[attr-defined]


def _unwrap(resource: Resource, action: str, wrapper: Any) -> None:
    """Take ``wrapper`` out of the chain of wrappers on ``resource.<action>``, wherever it sits."""
    current: Any = getattr(resource, action, None)
    if current is wrapper:
        setattr(resource, action, wrapper.__wrapped__)
        return
    while hasattr(current, "__wrapped__"):
        inner = current.__wrapped__
        if inner is wrapper:
            current.__wrapped__ = wrapper.__wrapped__
            return
        current = inner


# -- option checks ----------------------------------------------------------------------------------------------


def _check_driver_options(driver: Any, config: Mapping[str, Any]) -> None:
    """Check driver options now rather than at install: names always, values where building is free of effects."""
    if not isinstance(driver, str):
        return
    options = {k: v for k, v in config.items() if k not in NAMESPACE_OPTIONS}
    cls = resolve_driver_class(driver)
    try:
        inspect.signature(cls).bind_partial(**options)
    except TypeError as exc:
        raise ConfigurationError(f"bad option for the {driver!r} driver: {exc}") from exc
    if driver in ("memory", "null"):
        cls(**options).close()  # in-process and side-effect free: validates every value too


def _check_driver(driver: object, drivers: object, partition_aware: bool) -> Any:
    if partition_aware and (drivers is not None or driver != "filesystem"):
        raise ConfigurationError("partition_aware=True applies to driver='filesystem' only")
    if drivers is not None:
        if not isinstance(drivers, Sequence) or isinstance(drivers, (str, bytes)) or not drivers:
            raise ConfigurationError("drivers must be a non-empty list of tiers such as [{'driver': 'memory'}, ...]")
        return "memory"  # unused: the tiers decide
    if isinstance(driver, Driver):
        return driver
    if not isinstance(driver, str) or not driver.strip():
        raise ConfigurationError(f"driver must be a driver name such as 'memory' or a Driver instance; got {driver!r}")
    name = driver.strip().lower()
    if partition_aware and name == "filesystem":
        name = "partition-filesystem"
    resolve_driver_class(name)  # an unknown name or a missing extra fails here, not at install
    return name


def _check_config(
    config: Mapping[str, Any] | None, max_size: int | None, driver: Any, drivers: object
) -> dict[str, Any]:
    if config is not None and not isinstance(config, Mapping):
        raise ConfigurationError(f"config must be a dict of options; got {config!r}")
    out = dict(config or {})
    if max_size is not None:
        if drivers is not None or driver != "memory":
            raise ConfigurationError("max_size applies to the memory driver; in a tier, put it in that tier's config")
        out.setdefault("max_size", max_size)
    return out


def _check_strategy(strategy: object) -> str:
    normalized = strategy.strip().lower() if isinstance(strategy, str) else strategy
    if normalized not in _STRATEGIES:
        raise ConfigurationError(f"strategy must be one of {list(_STRATEGIES)}; got {strategy!r}")
    return str(normalized)


def _check_plugin_namespace(namespace: str | None) -> str | None:
    if namespace is None:
        return None
    if not isinstance(namespace, str) or not slugify(namespace):
        raise ConfigurationError(f"namespace must contain letters or digits, such as 'hot-path'; got {namespace!r}")
    return namespace


def _names(option: str, names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigurationError(f"{option} must be a list of resource names; got {names!r}")
    return frozenset(names)


def _page_arguments(options: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``offset`` into the 1-based ``page`` that ``Resource.page`` takes."""
    out = dict(options)
    offset = out.pop("offset", None)
    if offset is not None and "page" not in out and "cursor" not in out:
        size = out.get("size", 25)
        if not isinstance(offset, int) or offset < 0 or not isinstance(size, int) or size < 1:
            raise ConfigurationError(f"offset must be an int >= 0 and size an int >= 1; got {offset!r}, {size!r}")
        out["page"], out["size"] = offset // size + 1, size
    return out


_S3_CONNECTION_OPTIONS = ("client", "endpoint_url", "region", "aws_access_key_id", "aws_secret_access_key",
                          "aws_session_token")


def _s3_defaults(config: dict[str, Any], database: Database, slug: str) -> dict[str, Any]:
    """Under the plugin the S3 driver uses the database's bucket and client unless told otherwise."""
    out = dict(config)
    if not any(option in out for option in _S3_CONNECTION_OPTIONS):
        out["client"] = database.client
        out.setdefault("bucket", database.bucket)
    out.setdefault("key_prefix", f"{database.key_prefix}plugin={slug}/")
    return out


def _with_database_defaults(tier: Mapping[str, Any] | Driver, database: Database, slug: str) -> Any:
    if isinstance(tier, Mapping) and str(tier.get("driver", "")).strip().lower() == "s3":
        return {**tier, "config": _s3_defaults(dict(tier.get("config") or {}), database, slug)}
    return tier
