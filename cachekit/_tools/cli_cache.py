"""``cachekit keys``, ``stats`` and ``clear``: look inside a cache an application filled, by namespace and resource.

Three ways to say where the entries are, none of which needs the storage layout:

- ``--namespace NS [--resource R]`` with ``--driver``/``--config``: the entries of ``Cache(namespace=NS)``
  (``--resource`` alone means the default namespace, ``cachekit``, that ``Cache(...)`` uses when given none);
- ``--plugin [SLUG] [--resource R]`` with ``--driver``/``--config``: a ``CachePlugin``'s entries (slug ``cache``,
  or ``cache--hot-path`` for ``CachePlugin(namespace="hot-path")``; ``--plugin hot-path`` says the same);
- ``--database URL [--plugin SLUG] [--resource R]``: the plugin's S3 cache inside that s3db database, found the
  way the plugin itself finds it (the plugin is built on the database, so its layout is the plugin's business).

Every one goes through the public :class:`~cachekit.Cache` API (``keys``, ``clear``, ``invalidate_resource``).
Without any of them the commands see the driver's raw keys under ``--prefix``. ``keys`` that finds nothing
says so on stderr and exits 0 (an empty listing is an answer, not a failure: status 1 means the backend
failed).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._types import MISSING
from ..drivers import Driver, available_drivers, create_driver, resolve_driver_class
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..cache import Cache

__all__ = [
    "CLI_CONNECT_TIMEOUT", "CacheView", "add_cache_options", "open_driver", "opened_view", "quiet_logs", "run_clear",
    "run_keys", "run_orphans", "run_stats", "tier_options",
]

_DEFAULT_NAMESPACE = "cachekit"  # what Cache(...) uses when given no namespace
_PLUGIN_SLUG = "cache"
#: Seconds a command waits to connect to Redis or S3 when ``--config`` says nothing (the drivers' default is 5 s,
#: made for applications; a person at a terminal should hear of a wrong host or a TLS/plain mismatch sooner).
CLI_CONNECT_TIMEOUT = 2.0
_ORPHAN_BATCH = 500  # keys per get_many when sizing orphans
_TIERED_OPTIONS = ("drivers", "promote_on_hit", "strategy")
_TIERED_EXAMPLE = ('\'{"drivers": [{"driver": "memory", "ttl": 60}, '
                   '{"driver": "redis", "config": {"url": "redis://127.0.0.1:6379/0"}}]}\'')


class UsageError(Exception):
    """A usage or configuration mistake on the command line: reported in one line, exit status 2.

    Defined here, and exported by :mod:`cachekit._tools.cli`, so that both modules raise the same class.
    """


@dataclass
class CacheView:
    """What a command looks at: a namespace (and resource) of a :class:`Cache`, or a driver's raw keys."""

    driver: Driver
    cache: Cache | None = None  # None: the raw driver view
    resource: str | None = None
    prefix: str = ""
    closers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def where(self) -> str:
        """The entries looked at, in words: ``of resource 'users' in namespace 'cache'``."""
        if self.cache is None:
            return f"under {self.prefix!r}" if self.prefix else "(every key of this driver)"
        scope = f"namespace {self.cache.namespace!r}"
        scope = f"of resource {self.resource!r} in {scope}" if self.resource else f"of {scope}"
        return f"{scope} under {self.prefix!r}" if self.prefix else scope

    @property
    def key_prefix(self) -> str:
        """The prefix of the keys looked at, as :meth:`keys` prints them."""
        if self.cache is None:
            return self.prefix
        return self.cache.prefix + self._cache_prefix()

    def _cache_prefix(self) -> str:
        if self.cache is None or not self.resource:
            return self.prefix
        from ..keys import resource_prefix

        base = resource_prefix(self.cache.namespace, self.resource, case_sensitive=self.cache.case_sensitive)
        return base + self.prefix

    def keys(self) -> list[str]:
        """The stored keys looked at, sorted."""
        if self.cache is None:
            return sorted(self.driver.keys(self.prefix))
        return sorted(self.cache.keys(self._cache_prefix()))

    def orphans(self) -> dict[str, int | None]:
        """Stored keys looked at that no read can reach any more (left under old generations), with their bytes.

        ``None`` bytes: the driver stores live objects. An entry that expired meanwhile is left out.
        """
        if self.cache is None:
            raise UsageError("--orphans needs --namespace, --plugin or --resource: generations are per namespace")
        prefix = self._cache_prefix()
        current = set(self.cache.keys(prefix))
        stored = sorted(key for key in self.cache.keys(prefix, orphans=True) if key not in current)
        found: dict[str, int | None] = {}
        for start in range(0, len(stored), _ORPHAN_BATCH):
            batch = stored[start : start + _ORPHAN_BATCH]
            for key, blob in zip(batch, self.driver.get_many(batch), strict=True):
                if isinstance(blob, (bytes, bytearray, memoryview)):
                    found[key] = len(blob)
                elif blob is not MISSING:
                    found[key] = None
        return found

    def clear(self) -> int:
        """Remove the entries looked at; return how many were removed."""
        if self.cache is None:
            return self.driver.clear(self.prefix)
        if self.resource and not self.prefix:
            # Every process stops reading the resource at once (its generation), then the entries go.
            self.cache.invalidate_resource(self.resource)
        return int(self.cache.clear(self._cache_prefix()))


# -- options ----------------------------------------------------------------------------------------------------


def add_cache_options(parser: argparse.ArgumentParser, command: str) -> None:
    """The options of ``keys``, ``stats``, ``clear``, ``ping`` and ``invalidate``."""
    drivers = ", ".join(available_drivers())
    parser.add_argument("--driver", metavar="NAME", help=f"driver name ({drivers}) or 'module:Class'")
    parser.add_argument("--config", metavar="JSON_OR_FILE",
                        help="driver options: inline JSON, or a .json or .toml file (may name the driver; "
                             "'drivers': [...] for a multi-tier cache)")
    parser.add_argument("--database", metavar="URL",
                        help="the s3db database (s3://KEY:SECRET@bucket/prefix?endpoint=...) whose CachePlugin "
                             "S3 cache to use; implies --plugin")
    if command == "ping":
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        return
    parser.add_argument("--namespace", metavar="NS", help="the Cache(namespace=...) whose entries to use")
    parser.add_argument("--plugin", nargs="?", const=_PLUGIN_SLUG, metavar="SLUG",
                        help="a CachePlugin's entries: its slug ('cache', the default, or 'cache--NAME')")
    parser.add_argument("--resource", metavar="R", required=command == "invalidate",
                        help="the resource written to (e.g. 'users')" if command == "invalidate"
                        else "only the entries of this resource (e.g. 'users')")
    if command == "invalidate":
        return
    parser.add_argument("--prefix", default="", metavar="P",
                        help="only keys starting with this (within the namespace and resource, if given)")
    if command in ("stats", "keys"):
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table" if command == "stats"
                            else "print one JSON object (the keys and where they were looked for)")
    if command == "keys":
        parser.add_argument("--orphans", action="store_true",
                            help="only entries no read can reach any more (left under old generations by writes), "
                                 "with their bytes")
    if command == "stats":
        parser.add_argument("--fleet", action="store_true",
                            help="hits, misses and hit rate per namespace, resource and action, summed over every "
                                 "process that publishes them (Cache(publish_stats=True)) to this backend")
        parser.add_argument("--watch", action="store_true", help="a live view, refreshed every --interval seconds")
        parser.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                            help="seconds between two refreshes of --watch (default 1; implies --watch)")
        parser.add_argument("--iterations", type=int, default=None, metavar="N",
                            help="stop --watch after N refreshes (default: until Ctrl-C; implies --watch)")
    if command == "clear":
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _plugin_slug(value: str) -> str:
    from ..plugin import CachePlugin

    if value == _PLUGIN_SLUG or value.startswith(_PLUGIN_SLUG + "--"):
        value = value[len(_PLUGIN_SLUG) + 2 :]
    try:
        return CachePlugin(namespace=value or None).slug
    except ConfigurationError as exc:
        raise UsageError(f"--plugin {value!r}: {exc}") from exc


def _plugin_namespace(slug: str) -> str | None:
    """``cache--hot-path`` -> ``hot-path``; ``cache`` -> ``None``."""
    if slug.startswith(_PLUGIN_SLUG + "--"):
        return slug[len(_PLUGIN_SLUG) + 2 :]
    return None


# -- opening --------------------------------------------------------------------------------------------------


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Silence cachekit's log lines while a command runs: its one error line says what failed.

    A driver that fails logs it (rate-limited) for the application's logs; on the command line that line would
    come before the command's own error and say the same thing. ``CACHEKIT_DEBUG=1`` keeps them.
    """
    logger = logging.getLogger("cachekit")
    level = logger.level
    if not os.environ.get("CACHEKIT_DEBUG"):
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def opened_view(args: argparse.Namespace, config: dict[str, Any]) -> Iterator[CacheView]:
    """The view the options name, closed afterwards. ``config`` is the parsed ``--config``."""
    namespace, plugin = getattr(args, "namespace", None), getattr(args, "plugin", None)
    if namespace and (plugin or args.database):
        raise UsageError("give --namespace or --plugin/--database, not both: a plugin's namespace is its slug")
    options = dict(config)
    named = options.pop("driver", None)
    name = args.driver or named
    with quiet_logs():
        view = _database_view(args, name, options) if args.database else _driver_view(args, name, options)
        try:
            yield view
        finally:
            for close in reversed(view.closers):
                close()


def tier_options(name: object, options: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """Take a multi-tier configuration out of ``options``: ``(driver name, {"drivers": [...], ...} or None)``.

    ``--config '{"drivers": [...]}'`` (with or without ``--driver tiered``) is what ``Cache(drivers=[...])``
    takes, in JSON or TOML (``[[drivers]]`` tables); ``promote_on_hit`` and ``strategy`` go with it.

    :raises UsageError: ``--driver tiered`` without tiers, or another driver named next to ``drivers``.
    """
    driver = name.strip().lower() if isinstance(name, str) and name.strip() else None
    if "drivers" not in options:
        if driver == "tiered":
            hint = " ('drivers', not 'tiers')" if "tiers" in options else ""
            raise UsageError(f"the tiered driver needs its tiers in --config{hint}, fastest first, e.g. "
                             f"--config {_TIERED_EXAMPLE}")
        return driver, None
    if driver not in (None, "tiered"):
        raise UsageError(f"--driver {name} and 'drivers' in --config contradict each other: give the tiers alone "
                         "(or with --driver tiered) for a multi-tier cache, or drop 'drivers'")
    tiers = options.pop("drivers")
    if isinstance(tiers, (str, bytes, Mapping)) or not isinstance(tiers, list) or not tiers:
        raise UsageError(f"'drivers' in --config must be a non-empty list of tiers, e.g. {_TIERED_EXAMPLE}")
    tiered = {"drivers": tiers, **{k: options.pop(k) for k in _TIERED_OPTIONS[1:] if k in options}}
    return "tiered", tiered


def open_driver(name: str, options: dict[str, Any], tiered: Mapping[str, Any] | None = None) -> Driver:
    """The driver ``--driver``/``--config`` name, for looking inside a cache (never creating one).

    A filesystem directory must hold a cache already; Redis and S3 get a short connect timeout unless the
    configuration sets one (:data:`CLI_CONNECT_TIMEOUT`). ``tiered`` is :func:`tier_options`'s second result.
    """
    if tiered is None:
        return _create(name, options)
    if options:
        raise UsageError(f"with 'drivers' in --config each tier takes its own 'config'; move {sorted(options)} into a "
                         "tier (or, for namespace options such as 'serializer', keep them at the top level)")
    from .._build import build_driver

    tiers = [_inspecting_tier(index, tier) for index, tier in enumerate(tiered["drivers"])]
    return build_driver(None, tiers, {}, bool(tiered.get("promote_on_hit", True)),
                        tiered.get("strategy", "write-through"), time.time)


def _inspecting_tier(index: int, tier: object) -> dict[str, Any]:
    if not isinstance(tier, Mapping) or not isinstance(tier.get("driver"), str):
        raise UsageError(f"drivers[{index}] in --config must be an object with a 'driver' name, such as "
                         f'{{"driver": "memory"}}; got {json.dumps(tier, default=str)}')
    config = tier.get("config") or {}
    if not isinstance(config, Mapping):
        raise UsageError(f"drivers[{index}]['config'] in --config must be an object of driver options")
    options = dict(config)
    _inspection_defaults(str(tier["driver"]), options)
    return {**tier, "config": options}


def _inspection_defaults(name: str, options: dict[str, Any]) -> None:
    accepted = inspect.signature(resolve_driver_class(name)).parameters
    # Looking inside a cache must not create an empty one where a path was mistyped.
    if "create_directory" in accepted:
        options.setdefault("create_directory", False)
        _check_existing_disk_cache(options.get("directory"), name)
    if "connect_timeout" in accepted and "client" not in options:
        options.setdefault("connect_timeout", CLI_CONNECT_TIMEOUT)


def _driver_view(args: argparse.Namespace, name: object, options: dict[str, Any]) -> CacheView:
    if (not isinstance(name, str) or not name) and "drivers" not in options:
        raise UsageError(f"--driver is required (one of {', '.join(available_drivers())}), or a 'driver' key "
                         "in the --config file, or --database URL for a CachePlugin's S3 cache")
    from ..cache import NAMESPACE_OPTIONS, Cache

    namespace_options = {k: options.pop(k) for k in list(options) if k in NAMESPACE_OPTIONS}
    driver_name, tiered = tier_options(name, options)
    assert driver_name is not None  # checked above: a name, or tiers
    driver = open_driver(driver_name, options, tiered)
    namespace, plugin = getattr(args, "namespace", None), getattr(args, "plugin", None)
    resource = getattr(args, "resource", None)
    if not (namespace or plugin or resource or args.command == "invalidate"):
        return CacheView(driver, prefix=getattr(args, "prefix", ""), closers=[driver.close])
    namespace = _plugin_slug(plugin) if plugin else (namespace or _DEFAULT_NAMESPACE)
    try:
        # One try per bump: a person waits at the terminal, and a failure is reported, not retried in the background.
        cache = Cache(driver, namespace=namespace.strip("/"), config=namespace_options, retry_attempts=1)
    except BaseException:
        driver.close()
        raise
    return CacheView(driver, cache, resource, getattr(args, "prefix", ""), closers=[cache.close])


def _database_view(args: argparse.Namespace, name: object, options: dict[str, Any]) -> CacheView:
    if name not in (None, "s3"):
        raise UsageError(f"--database finds a CachePlugin's S3 cache; for a {name} cache give --plugin with "
                         "--driver and --config instead")
    try:
        from botocore.exceptions import BotoCoreError, ClientError

        from ..s3db import Database
        from ..s3db.errors import ValidationError
    except ImportError as exc:
        raise UsageError(f"--database needs boto3: pip install 'cachekit-orm[s3]' ({exc})") from exc
    from ..plugin import CachePlugin

    slug = _plugin_slug(getattr(args, "plugin", None) or _PLUGIN_SLUG)
    try:
        database = Database.connect(args.database)
    except ValidationError as exc:
        raise UsageError(f"--database: {exc}") from exc
    try:
        _check_bucket(database, BotoCoreError, ClientError)
        plugin = CachePlugin(driver="s3", config=options, namespace=_plugin_namespace(slug))
        database.use_plugin(plugin)  # builds the plugin's Cache on this database, as the application's did
    except BaseException:
        database.close()
        raise
    cache = plugin.cache
    assert cache is not None  # use_plugin installed it
    return CacheView(cache.driver, cache, getattr(args, "resource", None), getattr(args, "prefix", ""),
                     closers=[database.close])


def _check_bucket(database: Any, boto_error: type[Exception], client_error: type[Exception]) -> None:
    """One HEAD of the bucket, so that a wrong URL is one line saying which part is wrong."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    from .._redact import redact
    from ..errors import DriverUnavailable

    try:
        database.client.head_bucket(Bucket=database.bucket)
    except NoCredentialsError as exc:
        raise UsageError("--database: no AWS credentials; put them in the URL (s3://KEY:SECRET@bucket/prefix) or "
                         "in boto3's usual places (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws)") from exc
    except EndpointConnectionError as exc:
        raise DriverUnavailable(f"--database: cannot reach the S3 endpoint: {redact(str(exc))}") from exc
    except client_error as exc:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code"))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise UsageError(f"--database: bucket {database.bucket!r} does not exist at that endpoint") from exc
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise UsageError(f"--database: S3 refused these credentials for bucket {database.bucket!r} "
                             f"({code}); check KEY:SECRET in the URL") from exc
        raise DriverUnavailable(f"--database: S3 failed: {redact(str(exc))}") from exc
    except boto_error as exc:
        raise DriverUnavailable(f"--database: S3 failed: {redact(str(exc))}") from exc


def _create(name: str, options: dict[str, Any]) -> Driver:
    _inspection_defaults(name, options)
    try:
        return create_driver(name, **options)
    except TypeError as exc:  # drivers without **unknown reject an option with a TypeError
        raise ConfigurationError(_option_advice(name, exc)) from exc


def _option_advice(name: str, exc: TypeError) -> str:
    """Say which option is missing or wrong in --config terms, never as a Python signature."""
    parameters = inspect.signature(resolve_driver_class(name)).parameters.values()
    accepted = [p.name for p in parameters
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in ("self", "clock")]
    required = [p.name for p in parameters if p.default is p.empty and p.name in accepted]
    text = str(exc)
    if "missing" in text and required:
        example = json.dumps({option: f"<{option}>" for option in required})
        return f"the {name} driver needs {', '.join(map(repr, required))} in --config, e.g. --config '{example}'"
    reason = text.split(") ", 1)[-1]
    return f"bad option for the {name!r} driver in --config ({reason}); accepted: {', '.join(accepted)}"


def _check_existing_disk_cache(directory: object, name: str = "filesystem") -> None:
    # The filesystem drivers keep diskcache's SQLite file in their directory (the partition-aware one in a
    # folder below it); opening a driver on a directory without one would write a new, empty cache there.
    if directory is None:
        raise UsageError(f"the {name} driver needs the cache's directory: --config '{{\"directory\": "
                         "\"/path/to/cache\"}'")
    if not isinstance(directory, (str, os.PathLike)):
        return  # the driver reports a bad option itself
    root = Path(directory).expanduser()
    if not root.exists():
        raise UsageError(f"cache directory {str(root)!r} does not exist; check the 'directory' option (cachekit "
                         "looks inside existing caches only)")
    if root.is_dir() and not any(root.glob("cache.db")) and not any(root.glob("*/cache.db")):
        raise UsageError(f"{root} holds no filesystem cache (no cache.db in it); check the 'directory' option")


# -- commands -----------------------------------------------------------------------------------------------------


def run_orphans(view: CacheView, as_json: bool = False) -> int:
    """Print the orphaned entries, ``key  N bytes`` a line (or one JSON object), then their total on stderr."""
    found = view.orphans()
    total = sum(size or 0 for size in found.values())
    if as_json:
        print(json.dumps({"driver": view.driver.name, "namespace": view.cache.namespace if view.cache else None,
                          "resource": view.resource, "count": len(found), "bytes": total,
                          "orphans": [{"key": key, "bytes": size} for key, size in found.items()]}, indent=2))
        return 0
    for key, size in found.items():
        sys.stdout.write(f"{key}  {'-' if size is None else size} bytes\n")
    sys.stdout.flush()
    print(f"cachekit: {_n_keys(len(found))} orphaned {view.where}, {total:,} bytes (TTLs and eviction remove them)",
          file=sys.stderr)
    return 0


def run_keys(view: CacheView, as_json: bool = False) -> int:
    """Print the keys, one a line (or one JSON object); none found is said on stderr (exit status 0 all the same)."""
    keys = view.keys()
    if as_json:
        found: dict[str, Any] = {"driver": view.driver.name, "count": len(keys), "keys": keys}
        if view.cache is not None:
            found["namespace"] = view.cache.namespace
            if view.resource:
                found["resource"] = view.resource
        if view.key_prefix:
            found["prefix"] = view.key_prefix
        print(json.dumps(found, indent=2, default=str))
        return 0
    for key in keys:
        sys.stdout.write(key + "\n")
    sys.stdout.flush()
    if not keys:
        print(f"cachekit: no keys found {view.where}", file=sys.stderr)
    return 0


def stats_of(view: CacheView) -> dict[str, Any]:
    """The facts ``stats`` prints: the driver's, and the number of entries looked at."""
    driver = view.driver
    info: dict[str, Any] = {"driver": driver.name, **driver.stats(), "size": driver.size()}
    if view.cache is not None:
        info["namespace"] = view.cache.namespace
        if view.resource:
            info["resource"] = view.resource
    if view.key_prefix:
        info["prefix"] = view.key_prefix
        info["keys_under_prefix"] = len(view.keys())
    return info


def run_stats(view: CacheView, as_json: bool, print_mapping: Callable[[str, Mapping[str, Any]], None]) -> int:
    """Print the facts of :func:`stats_of` as JSON or through ``print_mapping(title, info)``."""
    info = stats_of(view)
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True, default=str))
    else:
        print_mapping(f"{info['driver']} cache", info)
    return 0


def run_clear(view: CacheView, yes: bool, confirm: Callable[[str], bool]) -> int:
    """Remove the entries looked at, after a confirmation unless ``yes``; 1 when the user says no.

    With nothing to remove it says so and exits 0 without asking.
    """
    where = view.where
    if not yes:
        count = len(view.keys())
        if not count:
            print(f"Nothing to remove: no keys {where}.")
            return 0
        if not sys.stdin.isatty():
            raise UsageError(f"clear would remove {_n_keys(count)} {where}; pass --yes to confirm "
                             "(stdin is not a terminal, so cachekit cannot ask)")
        if not confirm(f"Remove {_n_keys(count)} {where} from {view.driver!r}? [y/N] "):
            print("Nothing removed.")
            return 1
    removed = view.clear()
    print(f"Removed {_n_keys(removed)} {where}.")
    return 0


def _n_keys(count: int) -> str:
    return f"{count} key" if count == 1 else f"{count} keys"
