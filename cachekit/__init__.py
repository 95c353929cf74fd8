"""cachekit: a cache in front of ORM-style resources.

Reads are wrapped by :func:`cached`, writes by :func:`invalidates`; a :class:`Cache` holds the driver (memory,
filesystem, Redis, S3, multi-tier), the codec and the policies. See the README for the three ways in.
"""

from __future__ import annotations

from ._types import DEFAULT, MISSING
from .decorators import cached, invalidates
from .drivers import Driver, register_driver
from .keys import KeySpec, register_key_resolver, stable_hash
from .namespace import DEFAULT_TTL, Cache, Namespace
from .policies import MethodPolicy
from .scopes import Invalidation
from .stats import CacheStats

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


def __getattr__(name: str) -> object:
    # CachePlugin pulls in the plugin machinery; load it on first use so `import cachekit` stays light.
    if name == "CachePlugin":
        from .plugin import CachePlugin

        return CachePlugin
    raise AttributeError(f"module 'cachekit' has no attribute {name!r}")
