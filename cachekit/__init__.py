"""cachekit: a cache in front of ORM-style resources.

Reads are wrapped by :func:`cached`, writes by :func:`invalidates`; a :class:`Cache` holds the driver (memory,
filesystem, Redis, S3, multi-tier), the codec and the policies; :class:`CachePlugin` caches every resource of a
:mod:`cachekit.s3db` document store. See the README for the three ways in.

``cached``, ``invalidates`` and ``CachePlugin`` are loaded on first use (wrapt, which the decorators are built
on, imports asyncio), so ``import cachekit`` and a plain :class:`Cache` stay light.

Supported modules: their public names (``__all__``) are the API. Other modules (``cachekit.cache``,
``cachekit.keys``, ``cachekit.scopes`` ...) hold names this package re-exports: import those from here. Modules
whose name starts with ``_`` (the tools wing ``cachekit._tools`` too: the CLI, demo and bench, run as the
``cachekit`` command) are internal and may change in any release.

* ``cachekit``: ``Cache``, ``cached``, ``invalidates``, ``CachePlugin`` and the names below in ``__all__``;
* ``cachekit.errors``: the exceptions and warnings;
* ``cachekit.drivers``, ``cachekit.drivers.base``: ``Driver``, its capabilities and the registry (driver authors);
* ``cachekit.codecs``: serializers, compression and the codec;
* ``cachekit.generations``: ``GenerationStore``, what a shared driver's ``generation_store()`` returns;
* ``cachekit.events``: ``cache.on(...)``'s events and ``subscribe_all``;
* ``cachekit.metrics``: Prometheus and OpenTelemetry metrics;
* ``cachekit.health``: what ``cache.ping()`` returns;
* ``cachekit.fleet``: fleet stats (``Cache(publish_stats=...)``, ``cachekit stats --fleet``);
* ``cachekit.testing``: the pytest plugin and its fixtures;
* ``cachekit.plugin``: ``CachePlugin`` and ``ResourceCache``, for ``cachekit.s3db``;
* ``cachekit.s3db``: the S3 document store the plugin caches;
* ``cachekit.django``, ``cachekit.flask``, ``cachekit.starlette``: the framework doors (their extras).
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._types import DEFAULT, MISSING
from .cache import DEFAULT_TTL, Cache, Namespace
from .drivers import Driver, register_driver
from .keys import KeySpec, register_key_resolver, stable_hash
from .policies import MethodPolicy
from .scopes import Invalidation
from .stats import CacheStats

if _TYPE_CHECKING:  # what type checkers see of the names loaded on first use
    from .decorators import cached, invalidates
    from .plugin import CachePlugin

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "DEFAULT_TTL",
    "MISSING",
    "Cache",
    "CachePlugin",
    "CacheStats",
    "Driver",
    "Invalidation",
    "KeySpec",
    "MethodPolicy",
    "Namespace",
    "cached",
    "invalidates",
    "register_driver",
    "register_key_resolver",
    "stable_hash",
]

_LAZY = {"cached": "decorators", "invalidates": "decorators", "CachePlugin": "plugin"}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cachekit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    # help(cachekit) and dir() list the names loaded on first use too (pydoc looks them up, loading them).
    return sorted({*globals(), *__all__})
