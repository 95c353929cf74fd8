"""Checks of :class:`~cachekit.CachePlugin`'s options, and the defaults it derives from the database.

The home of everything the plugin validates at construction (driver, tiers, config, strategy, namespace,
include/exclude lists), of the ``offset`` -> ``page`` translation its warmers and ``key_for`` share, and of the
S3 driver's defaults under the plugin (the database's client, bucket and key prefix). Nothing here talks to a
backend.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..cache import NAMESPACE_OPTIONS
from ..drivers import Driver, resolve_driver_class
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..s3db import Database

__all__ = [
    "check_config",
    "check_driver",
    "check_driver_options",
    "check_plugin_namespace",
    "check_strategy",
    "page_arguments",
    "resource_names",
    "s3_defaults",
    "slugify",
    "with_database_defaults",
]

_STRATEGIES = ("write-through", "lazy-promotion")


def slugify(text: str) -> str:
    """Lower case, runs of characters other than ``[a-z0-9]`` become one ``-``, no ``-`` at either end."""
    return re.sub(r"[^a-z0-9]+", "-", text.strip().lower()).strip("-")


def check_driver_options(driver: Any, config: Mapping[str, Any]) -> None:
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


def check_driver(driver: object, drivers: object, partition_aware: bool) -> Any:
    if partition_aware and (drivers is not None or driver != "filesystem"):
        raise ConfigurationError("partition_aware=True applies to driver='filesystem' only")
    if drivers is not None:
        named = driver.strip().lower() if isinstance(driver, str) else None
        if isinstance(driver, Driver) or named not in (None, "memory", "tiered"):
            raise ConfigurationError(
                f"driver={driver!r} and drivers=[...] contradict each other: give drivers=[...] alone for a "
                "multi-tier cache (put that driver in a tier), or driver= alone"
            )
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


def check_config(
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


def check_strategy(strategy: object) -> str:
    normalized = strategy.strip().lower() if isinstance(strategy, str) else strategy
    if normalized not in _STRATEGIES:
        raise ConfigurationError(f"strategy must be one of {list(_STRATEGIES)}; got {strategy!r}")
    return str(normalized)


def check_plugin_namespace(namespace: str | None) -> str | None:
    if namespace is None:
        return None
    if not isinstance(namespace, str) or not slugify(namespace):
        raise ConfigurationError(f"namespace must contain letters or digits, such as 'hot-path'; got {namespace!r}")
    return namespace


def resource_names(option: str, names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigurationError(f"{option} must be a list of resource names; got {names!r}")
    return frozenset(names)


def page_arguments(options: Mapping[str, Any]) -> dict[str, Any]:
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


def s3_defaults(config: dict[str, Any], database: Database, slug: str) -> dict[str, Any]:
    """Under the plugin the S3 driver uses the database's bucket and client unless told otherwise."""
    out = dict(config)
    if not any(option in out for option in _S3_CONNECTION_OPTIONS):
        out["client"] = database.client
        out.setdefault("bucket", database.bucket)
    out.setdefault("key_prefix", f"{database.key_prefix}plugin={slug}/")
    return out


def with_database_defaults(tier: Mapping[str, Any] | Driver, database: Database, slug: str) -> Any:
    if isinstance(tier, Mapping) and str(tier.get("driver", "")).strip().lower() == "s3":
        return {**tier, "config": s3_defaults(dict(tier.get("config") or {}), database, slug)}
    return tier
