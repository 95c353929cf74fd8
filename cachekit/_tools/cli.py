"""The ``cachekit`` command line.

::

    cachekit demo [--quick] [--driver NAME] [--config JSON_OR_FILE] [--endpoint URL]
    cachekit bench [--json FILE] [--quick] ...
    cachekit stats|keys|clear --driver NAME --config JSON_OR_FILE [--namespace NS | --plugin [SLUG]] [--resource R]
    cachekit stats|keys|clear --database S3DB_URL [--plugin SLUG] [--resource R]
    cachekit stats|keys|clear --driver NAME --config JSON_OR_FILE [--prefix P]     (the driver's raw keys)
    cachekit stats ... --watch [--interval 1] [--iterations N]                      (a live view)
    cachekit stats ... --fleet [--watch] [--json]        (hit rates summed over the processes that publish them)
    cachekit keys ... [--json] [--orphans]          (one JSON object; the entries left under old generations)
    cachekit ping --driver NAME --config JSON_OR_FILE [--json]                        (latency per tier)
    cachekit invalidate ... --resource R (--id ID ... | --partition P [--value F=V ...] | --all)

``--config`` is inline JSON (``'{"url": "redis://127.0.0.1:6379/0"}'``) or the path of a ``.json`` or ``.toml``
file holding the driver's options; a ``driver`` key in it stands in for ``--driver``, and ``"drivers": [...]``
(``[[drivers]]`` in TOML) describes a multi-tier cache as ``Cache(drivers=[...])`` takes it. ``stats``, ``keys`` and
``clear`` let an operator look inside a Redis, S3 or filesystem cache that an application filled, by namespace,
plugin and resource (:mod:`cachekit._tools.cli_cache`); ``keys`` that finds nothing says so on stderr, exit status 0.

A usage or configuration error prints one line (``cachekit: error: ...``) on stderr and exits with status 2; a
backend that cannot be reached, or another failure, exits with status 1. Never a traceback (set
``CACHEKIT_DEBUG=1`` to get one). ``rich`` (``pip install 'cachekit-orm[cli]'``) draws the tables and progress
bars; it is imported only by the commands that need it, so ``import cachekit`` never needs it.

E.g.::

    cachekit keys --driver redis --config '{"url": "redis://127.0.0.1:6379/0", "key_prefix": "app:"}' \\
        --namespace app --resource users
    cachekit clear --database 's3://KEY:SECRET@bucket/app?endpoint=http://127.0.0.1:5055' --resource users --yes
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .. import __version__
from ..drivers import resolve_driver_class
from ..errors import ConfigurationError, DriverError
from .cli_cache import (
    UsageError,
    add_cache_options,
    opened_view,
    run_clear,
    run_keys,
    run_orphans,
    run_stats,
    tier_options,
)

__all__ = [
    "EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "ArgumentParser", "UsageError", "build_parser", "load_config", "main",
]

PROG = "cachekit"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
_COMMANDS = ("demo", "bench", "stats", "keys", "clear", "ping", "invalidate")


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors raise :class:`UsageError` (one line, exit 2 from :func:`main`).

    argparse would print the usage text and call ``sys.exit``. ``cachekit bench`` builds its parser from this
    class too, so every command reports a usage error the same way.

    E.g.::

        parser = ArgumentParser(prog="cachekit bench")
        parser.parse_args(["--bogus"])      # raises UsageError("unrecognized arguments: --bogus (...)")
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- entry point --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    E.g.::

        main(["keys", "--driver", "filesystem", "--config", '{"directory": "/var/cache/app"}'])
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(arguments)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_FAILURE)
    except (UsageError, ConfigurationError) as exc:  # DriverNotFound is a ConfigurationError
        return _fail(str(exc), EXIT_USAGE)
    except DriverError as exc:  # DriverUnavailable included
        return _fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        _silence_stdout()  # `cachekit keys | head`: the reader left; do not complain at exit either
        return EXIT_FAILURE
    except Exception as exc:
        if os.environ.get("CACHEKIT_DEBUG"):
            raise
        return _fail(f"{type(exc).__name__}: {exc} (set CACHEKIT_DEBUG=1 for a traceback)", EXIT_FAILURE)


def _dispatch(arguments: list[str]) -> int:
    # bench parses its own options, so everything after the word goes to it untouched.
    if arguments[:1] == ["bench"]:
        return _run_bench(arguments[1:])
    args = build_parser().parse_args(arguments)
    if args.command is None:
        raise UsageError(f"choose a command: {', '.join(_COMMANDS)} (see '{PROG} --help')")
    handler = {"demo": _run_demo, "stats": _run_stats, "keys": _run_keys, "clear": _run_clear, "ping": _run_ping,
               "invalidate": _run_invalidate}[args.command]
    return handler(args)


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in tests)
        pass


# -- the parser -----------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command but ``bench`` (which parses its own options)."""
    parser = ArgumentParser(
        prog=PROG, description="A cache in front of ORM-style resources: a demo, benchmarks, and tools to look "
                               "inside a cache."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    _add_demo_options(commands.add_parser("demo", help="time cold and cached reads of an S3-backed resource"))
    commands.add_parser("bench", add_help=False, help="benchmarks; see 'cachekit bench --help'")
    summaries = {"stats": "show a cache's driver stats and size", "keys": "list stored keys, one a line",
                 "clear": "remove stored keys", "ping": "probe the backend (each tier) and show its latency",
                 "invalidate": "invalidate a resource's items or partitions in every process (a generation bump)"}
    for name, summary in summaries.items():
        command = commands.add_parser(name, help=summary, description=summary)
        add_cache_options(command, name)
        if name == "invalidate":
            _add_invalidate_options(command)
    return parser


def _add_invalidate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--id", action="append", default=[], metavar="ID", dest="ids",
                        help="an item written (repeatable): its reads, the aggregates and the partitions")
    parser.add_argument("--partition", metavar="NAME", help="a declared partition, such as by_region")
    parser.add_argument("--value", action="append", default=[], metavar="FIELD=VALUE", dest="values",
                        help="with --partition: one value combination (repeatable), such as region=eu")
    parser.add_argument("--all", action="store_true", dest="whole", help="every entry of the resource")


def _add_demo_options(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--quick", action="store_true",
                      help="a smaller run: 6-8 s on a busy 2-core machine (the full run: 1-2 min)")
    demo.add_argument("--driver", metavar="NAME", help="cache driver (default: memory)")
    demo.add_argument("--config", metavar="JSON_OR_FILE", help="driver options: inline JSON or a .json/.toml file")
    demo.add_argument("--endpoint", metavar="URL", help="an S3 endpoint to use instead of starting moto")
    demo.add_argument("--bucket", default="cachekit-demo", help="bucket for the demo data (default: %(default)s)")


# -- configuration --------------------------------------------------------------------------------------------------


def load_config(text: str | None) -> dict[str, Any]:
    """Driver options from inline JSON or from a ``.json``/``.toml`` file; ``{}`` for ``None``.

    :raises UsageError: for JSON or TOML that does not parse, a missing file, or a value that is not an object.
    """
    if text is None:
        return {}
    if text.lstrip()[:1] in ("{", "["):  # inline JSON; a list is parsed only to say it must be an object
        return _as_options(_parse_json(text, "--config"), "--config")
    path = Path(text).expanduser()
    if not path.is_file():
        looks_like_path = path.suffix.lower() in (".json", ".toml") or os.sep in text
        reason = f"file not found: {text}" if looks_like_path else f"is neither a JSON object nor a file: {text!r}"
        raise UsageError(f"--config {reason}; give inline JSON ('{{\"directory\": \"/tmp/c\"}}') or a .json/.toml file")
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read --config file {text}: {exc}") from exc
    data = _parse_toml(content, text) if path.suffix.lower() == ".toml" else _parse_json(content, text)
    return _as_options(data, text)


def _parse_json(content: str, where: str) -> object:
    try:
        return json.loads(content)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where} is not valid JSON: {exc}") from exc


def _parse_toml(content: str, where: str) -> object:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where} is not valid TOML: {exc}") from exc


def _as_options(data: object, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise UsageError(f"{where} must hold an object of driver options, not {type(data).__name__}")
    return data


# -- commands -------------------------------------------------------------------------------------------------------


def _run_keys(args: argparse.Namespace) -> int:
    with opened_view(args, load_config(args.config)) as view:
        return run_orphans(view, args.json) if args.orphans else run_keys(view, args.json)


def _run_stats(args: argparse.Namespace) -> int:
    # --interval and --iterations only mean something to --watch: giving one asks for the live view.
    watch = args.watch or args.interval is not None or args.iterations is not None
    interval = 1.0 if args.interval is None else args.interval
    if watch:
        from .cli_watch import check_watch_options

        check_watch_options(interval, args.iterations)
    if args.fleet and args.prefix:
        raise UsageError("--prefix filters stored keys, and --fleet reads the counters processes publish: give one "
                         "(--fleet narrows with --namespace, --plugin and --resource)")
    with opened_view(args, load_config(args.config)) as view:
        if args.fleet:
            from .cli_fleet import run_fleet

            return run_fleet(view, as_json=args.json, watch=watch, interval=interval, iterations=args.iterations)
        if watch:
            from .cli_watch import run_watch

            return run_watch(view, interval=interval, iterations=args.iterations, as_json=args.json)
        return run_stats(view, args.json, _print_mapping)


def _run_clear(args: argparse.Namespace) -> int:
    with opened_view(args, load_config(args.config)) as view:
        return run_clear(view, args.yes, _confirm)


def _run_ping(args: argparse.Namespace) -> int:
    from .cli_ops import run_ping

    with opened_view(args, load_config(args.config)) as view:
        return run_ping(view, args.json)


def _run_invalidate(args: argparse.Namespace) -> int:
    from .cli_ops import run_invalidate

    with opened_view(args, load_config(args.config)) as view:
        return run_invalidate(view, ids=args.ids, partition=args.partition, values=args.values, whole=args.whole)


def _confirm(question: str) -> bool:
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def _print_mapping(title: str, info: Mapping[str, Any]) -> None:
    def text(value: Any) -> str:
        return json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value)

    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # the table is a nicety; the facts print without rich
        width = max(map(len, info), default=0)
        for key, value in info.items():
            print(f"{key:<{width}}  {text(value)}")
        return
    table = Table(title=title)
    table.add_column("stat")
    table.add_column("value", overflow="fold")
    for key, value in info.items():
        table.add_row(key, text(value))
    Console().print(table)


def _run_demo(args: argparse.Namespace) -> int:
    needed = ("rich", "boto3") if args.endpoint else ("rich", "boto3", "moto")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"cachekit demo needs {', '.join(missing)}: pip install 'cachekit-orm[demo]'")
    from rich.console import Console

    from .demo import DemoOptions, run

    config = load_config(args.config)
    named = args.driver or config.pop("driver", None)
    driver, tiers = tier_options(named if named or "drivers" in config else "memory", config)
    assert driver is not None
    for name in [str(t.get("driver")) for t in tiers["drivers"] if isinstance(t, dict)] if tiers else [driver]:
        resolve_driver_class(name)  # an unknown driver fails now, not after S3 has been seeded
    options = DemoOptions(quick=args.quick, driver=driver, config=config, endpoint=args.endpoint, bucket=args.bucket,
                          tiers=tiers)
    return run(options, Console())


def _run_bench(arguments: list[str]) -> int:
    try:
        # Imported by name: the bench command lives in its own module, written and typed separately.
        bench = importlib.import_module("cachekit._tools.bench")
    except ImportError as exc:
        if exc.name == "cachekit._tools.bench":
            raise UsageError("this cachekit has no bench command (cachekit._tools.bench is missing)") from exc
        raise UsageError(f"cachekit bench needs {exc.name!r}: pip install 'cachekit-orm[bench]'") from exc
    run = getattr(bench, "main", None)
    if not callable(run):
        raise UsageError("this cachekit has no bench command (cachekit._tools.bench has no main(argv))")
    return int(run(arguments))


if __name__ == "__main__":
    sys.exit(main())
