"""The per-resource registry of :class:`~cachekit.CachePlugin` instances, and the unwrapping of read methods.

The home of what the plugin attaches to a :class:`~cachekit.s3db.Resource`: the slug -> facade map of every
instance installed on it, ``resource.cache`` (owned by the first installed instance), the accessors
``get_cache_namespace``, ``get_cache_driver``, ``get_cache_key_resolver`` and ``cache_key_for``, and
:func:`unwrap`, which takes one instance's wrapper out of a read method's chain wherever it sits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..drivers import Driver
    from ..s3db import Resource

__all__ = ["register", "unregister", "unwrap"]


class Facade(Protocol):
    """What the registry uses of a facade, a :class:`~cachekit.plugin.ResourceCache` (which imports this module)."""

    @property
    def slug(self) -> str: ...
    @property
    def driver(self) -> Driver: ...
    def key_resolver(self) -> Callable[..., str]: ...
    def key_for(
        self,
        action: str,
        params: Mapping[str, Any] | None = None,
        *,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
    ) -> str: ...

_REGISTRY_ATTR = "_cachekit_instances"


def register(resource: Resource, facade: Facade) -> None:
    """Record ``facade`` under its slug on ``resource`` (installing the accessors the first time)."""
    instances: dict[str, Facade] | None = getattr(resource, _REGISTRY_ATTR, None)
    if instances is None:
        instances = {}
        setattr(resource, _REGISTRY_ATTR, instances)
        _install_accessors(resource, instances)
    instances[facade.slug] = facade
    if not hasattr(resource, "cache") or getattr(resource, "cache", None) is None:
        resource.cache = facade  # type: ignore[attr-defined]  # the first installed instance owns it


def unregister(resource: Resource, facade: Facade) -> None:
    """Forget ``facade``; if it owned ``resource.cache``, another installed instance takes it (else ``None``)."""
    instances: dict[str, Facade] = getattr(resource, _REGISTRY_ATTR, {})
    instances.pop(facade.slug, None)
    if getattr(resource, "cache", None) is facade:
        resource.cache = next(iter(instances.values()), None)  # type: ignore[attr-defined]


def _install_accessors(resource: Resource, instances: dict[str, Facade]) -> None:
    def namespace(slug: str | None = None) -> Facade:
        if slug is None:
            owner: Facade | None = getattr(resource, "cache", None)
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


def unwrap(resource: Resource, action: str, wrapper: Any) -> None:
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

