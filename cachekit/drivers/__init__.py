"""The driver registry: names map to ``"module:Class"`` strings, imported only when a driver is created.

``import cachekit`` therefore never imports redis, boto3 or diskcache. A dotted path
(``"myapp.cache:MyDriver"``) works for third-party drivers, and :func:`register_driver` adds a name.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import ConfigurationError, DriverNotFound
from .base import Driver

__all__ = ["Driver", "available_drivers", "create_driver", "register_driver", "resolve_driver_class"]

_REGISTRY: dict[str, str] = {
    "memory": "cachekit.drivers.memory:MemoryDriver",
    "null": "cachekit.drivers.null:NullDriver",
    "filesystem": "cachekit.drivers.filesystem:FilesystemDriver",
    "partition-filesystem": "cachekit.drivers.partition_filesystem:PartitionAwareFilesystemCache",
    "redis": "cachekit.drivers.redis:RedisDriver",
    "s3": "cachekit.drivers.s3:S3Driver",
    "tiered": "cachekit.drivers.tiered:TieredDriver",
}

#: The extra that installs each driver's optional dependency.
_EXTRAS = {"redis": "redis", "boto3": "s3", "botocore": "s3", "diskcache": "filesystem"}


def register_driver(name: str, target: str) -> None:
    """Register ``target`` (``"package.module:ClassName"``) under ``name``; a later call replaces it.

    E.g.::

        register_driver("mine", "myapp.cache_drivers:MyDriver")
        Cache(driver="mine")
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"driver name must be a non-empty string; got {name!r}")
    if not isinstance(target, str) or ":" not in target:
        raise ConfigurationError(f"driver target must look like 'package.module:ClassName'; got {target!r}")
    _REGISTRY[name.strip().lower()] = target


def available_drivers() -> list[str]:
    """The registered driver names, sorted."""
    return sorted(_REGISTRY)


def resolve_driver_class(name: str) -> type[Driver]:
    """Import and return the driver class for a registered name or a ``"module:Class"`` path."""
    if not isinstance(name, str) or not name.strip():
        raise DriverNotFound(f"driver must be a non-empty name such as one of {available_drivers()}; got {name!r}")
    normalized = name.strip().lower()
    target = _REGISTRY.get(normalized) or (name.strip() if ":" in name else None)
    if target is None:
        raise DriverNotFound(
            f"unknown cache driver {name!r}; use one of {available_drivers()}, a 'module:Class' path, "
            "or register yours with cachekit.drivers.register_driver()"
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        extra = _EXTRAS.get(missing)
        hint = f"pip install 'cachekit-orm[{extra}]'" if extra else f"install the package that provides {missing!r}"
        raise DriverNotFound(f"driver {name!r} needs {missing!r}, which is not installed: {hint}") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverNotFound(f"{target!r} is not a cachekit Driver subclass")
    return cls


def create_driver(name: str, **options: Any) -> Driver:
    """Create a driver by registry name or ``"module:Class"`` path, passing ``options`` to its constructor."""
    return resolve_driver_class(name)(**options)
