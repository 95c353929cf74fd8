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

This module is the home of :class:`CachePlugin` itself: its options, install and stop, and the
database-wide management calls. The per-resource facade (:class:`ResourceCache`, ``resource.cache``) lives in
:mod:`cachekit.plugin._facade`, the registry of instances on a resource in :mod:`cachekit.plugin._registry`, and
the option checks in :mod:`cachekit.plugin._options`; the public names are importable from here as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._build import check_retries
from .._options import check_flag
from .._types import TTL, Clock, normalize_ttl
from ..cache import DEFAULT_TTL, Cache
from ..errors import ConfigurationError
from ..fleet import check_interval
from ..policies import parse_method_policies
from ._facade import READ_ACTIONS, ResourceCache
from ._options import (
    check_config,
    check_driver,
    check_driver_options,
    check_plugin_namespace,
    check_strategy,
    resource_names,
    s3_defaults,
    slugify,
    with_database_defaults,
)

if TYPE_CHECKING:
    from ..drivers import Driver
    from ..s3db import Database, Resource

# ResourceCache, READ_ACTIONS and slugify live in private siblings; importing them from here keeps working.
__all__ = ["READ_ACTIONS", "CachePlugin", "ResourceCache", "slugify"]

_BASE_SLUG = "cache"


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
    :param publish_stats: publish this process's counters for ``cachekit stats --fleet --plugin SLUG``
        (see :class:`~cachekit.Cache`): ``True`` (every 10 s) or seconds.
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
        publish_stats: bool | float = False,
        **unknown_options: Any,
    ) -> None:
        if unknown_options:
            raise ConfigurationError(
                f"CachePlugin got unknown options {sorted(unknown_options)}; see help(CachePlugin) for the options"
            )
        self.ttl = normalize_ttl(ttl)
        self.driver_option = check_driver(driver, drivers, partition_aware)
        self.drivers_option = list(drivers) if drivers is not None else None
        self.config = check_config(config, max_size, self.driver_option, drivers)
        check_driver_options(self.driver_option, self.config)
        self.include = resource_names("include", include) if include is not None else None
        self.exclude = resource_names("exclude", exclude or ())
        parse_method_policies(method_policies)  # validate now, not at install
        self.method_policies = dict(method_policies or {})
        check_retries(retry_attempts, retry_delay)
        unknown = sorted(set(self.method_policies) - set(READ_ACTIONS))
        if unknown:
            raise ConfigurationError(f"method_policies names unknown read methods {unknown}; use {list(READ_ACTIONS)}")
        if invalidation not in ("precise", "resource"):
            raise ConfigurationError(f"invalidation must be 'precise' or 'resource'; got {invalidation!r}")
        self.invalidation = invalidation
        self.promote_on_hit = check_flag("promote_on_hit", promote_on_hit)
        self.strategy = check_strategy(strategy)
        self.retry_attempts, self.retry_delay = retry_attempts, retry_delay
        self.clock = clock
        check_interval(publish_stats)
        self.publish_stats = publish_stats
        self._explicit_namespace = namespace is not None
        self.namespace = check_plugin_namespace(namespace)
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
            self.namespace = check_plugin_namespace(name)
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
            tiers = [with_database_defaults(t, database, self.slug) for t in self.drivers_option]
        elif self.driver_option == "s3":
            config = s3_defaults(config, database, self.slug)
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
            publish_stats=self.publish_stats,
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
