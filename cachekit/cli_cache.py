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
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .drivers import Driver, available_drivers, create_driver, resolve_driver_class
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .namespace import Cache

__all__ = ["CacheView", "add_cache_options", "opened_view", "run_clear", "run_keys", "run_stats"]

_DEFAULT_NAMESPACE = "cachekit"  # what Cache(...) uses when given no namespace
_PLUGIN_SLUG = "cache"


class UsageError(Exception):
    """A usage or configuration mistake on the command line: reported in one line, exit status 2.

    Defined here, and exported by :mod:`cachekit.cli`, so that both modules raise the same class.
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
        from .keys import resource_prefix

        base = resource_prefix(self.cache.namespace, self.resource, case_sensitive=self.cache.case_sensitive)
        return base + self.prefix

    def keys(self) -> list[str]:
        """The stored keys looked at, sorted."""
        if self.cache is None:
            return sorted(self.driver.keys(self.prefix))
        return sorted(self.cache.keys(self._cache_prefix()))

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
    """The options of ``keys``, ``stats`` and ``clear``."""
    drivers = ", ".join(available_drivers())
    parser.add_argument("--driver", metavar="NAME", help=f"driver name ({drivers}) or 'module:Class'")
    parser.add_argument("--config", metavar="JSON_OR_FILE",
                        help="driver options: inline JSON, or a .json or .toml file (may name the driver)")
    parser.add_argument("--namespace", metavar="NS", help="the Cache(namespace=...) whose entries to use")
    parser.add_argument("--plugin", nargs="?", const=_PLUGIN_SLUG, metavar="SLUG",
                        help="a CachePlugin's entries: its slug ('cache', the default, or 'cache--NAME')")
    parser.add_argument("--database", metavar="URL",
                        help="the s3db database (s3://KEY:SECRET@bucket/prefix?endpoint=...) whose CachePlugin "
                             "S3 cache to use; implies --plugin")
    parser.add_argument("--resource", metavar="R", help="only the entries of this resource (e.g. 'users')")
    parser.add_argument("--prefix", default="", metavar="P",
                        help="only keys starting with this (within the namespace and resource, if given)")
    if command == "stats":
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument("--watch", action="store_true", help="a live view, refreshed every --interval seconds")
        parser.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                            help="seconds between two refreshes of --watch (default 1)")
        parser.add_argument("--iterations", type=int, default=None, metavar="N",
                            help="stop --watch after N refreshes (default: until Ctrl-C)")
    if command == "clear":
        parser.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")


def _plugin_slug(value: str) -> str:
    from .plugin import CachePlugin

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
def opened_view(args: argparse.Namespace, config: dict[str, Any]) -> Iterator[CacheView]:
    """The view the options name, closed afterwards. ``config`` is the parsed ``--config``."""
    if args.namespace and (args.plugin or args.database):
        raise UsageError("give --namespace or --plugin/--database, not both: a plugin's namespace is its slug")
    options = dict(config)
    named = options.pop("driver", None)
    name = args.driver or named
    view = _database_view(args, name, options) if args.database else _driver_view(args, name, options)
    try:
        yield view
    finally:
        for close in reversed(view.closers):
            close()


def _driver_view(args: argparse.Namespace, name: object, options: dict[str, Any]) -> CacheView:
    if not isinstance(name, str) or not name:
        raise UsageError(f"--driver is required (one of {', '.join(available_drivers())}), or a 'driver' key in "
                         "the --config file, or --database URL for a CachePlugin's S3 cache")
    from .namespace import NAMESPACE_OPTIONS, Cache

    namespace_options = {k: options.pop(k) for k in list(options) if k in NAMESPACE_OPTIONS}
    driver = _create(name, options)
    if not (args.namespace or args.plugin or args.resource):
        return CacheView(driver, prefix=args.prefix, closers=[driver.close])
    namespace = _plugin_slug(args.plugin) if args.plugin else (args.namespace or _DEFAULT_NAMESPACE)
    try:
        cache = Cache(driver, namespace=namespace.strip("/"), config=namespace_options)
    except BaseException:
        driver.close()
        raise
    return CacheView(driver, cache, args.resource, args.prefix, closers=[cache.close])


def _database_view(args: argparse.Namespace, name: object, options: dict[str, Any]) -> CacheView:
    if name not in (None, "s3"):
        raise UsageError(f"--database finds a CachePlugin's S3 cache; for a {name} cache give --plugin with "
                         "--driver and --config instead")
    try:
        from .s3db import Database
    except ImportError as exc:
        raise UsageError(f"--database needs boto3: pip install 'cachekit-orm[s3]' ({exc})") from exc
    from .plugin import CachePlugin

    slug = _plugin_slug(args.plugin or _PLUGIN_SLUG)
    database = Database.connect(args.database)
    try:
        plugin = CachePlugin(driver="s3", config=options, namespace=_plugin_namespace(slug))
        database.use_plugin(plugin)  # builds the plugin's Cache on this database, as the application's did
    except BaseException:
        database.close()
        raise
    cache = plugin.cache
    assert cache is not None  # use_plugin installed it
    return CacheView(cache.driver, cache, args.resource, args.prefix, closers=[database.close])


def _create(name: str, options: dict[str, Any]) -> Driver:
    accepted = inspect.signature(resolve_driver_class(name)).parameters
    # Looking inside a cache must not create an empty one where a path was mistyped.
    if "create_directory" in accepted:
        options.setdefault("create_directory", False)
        _check_existing_disk_cache(options.get("directory"))
    try:
        return create_driver(name, **options)
    except TypeError as exc:  # drivers without **unknown reject an option with a TypeError
        names = [p for p in accepted if p not in ("self", "clock")]
        raise ConfigurationError(f"bad option for the {name!r} driver ({exc}); it accepts {names}") from exc


def _check_existing_disk_cache(directory: object) -> None:
    # The filesystem drivers keep diskcache's SQLite file in their directory (the partition-aware one in a
    # folder below it); opening a driver on a directory without one would write a new, empty cache there.
    if not isinstance(directory, (str, os.PathLike)):
        return  # the driver reports a bad or missing option itself
    root = Path(directory).expanduser()
    if root.is_dir() and not any(root.glob("cache.db")) and not any(root.glob("*/cache.db")):
        raise UsageError(f"{root} holds no filesystem cache (no cache.db in it); check the 'directory' option")


# -- commands -----------------------------------------------------------------------------------------------------


def run_keys(view: CacheView) -> int:
    """Print the keys, one a line; none found is said on stderr (exit status 0 all the same)."""
    keys = view.keys()
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
    """Remove the entries looked at, after a confirmation unless ``yes``; 1 when the user says no."""
    where = view.where
    if not yes:
        count = len(view.keys())
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
