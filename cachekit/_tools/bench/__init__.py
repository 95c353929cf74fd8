"""``cachekit bench``: cachekit's speed against its peers and the raw libraries, measured in the same run.

Speed is checked here, never in timed test asserts. Sections (``--only`` picks some):

* ``memory``: a ``@cached`` method hit on the memory driver (msgpack and objects mode) against cachetools,
  cachebox and a plain call. Targets: objects mode ≤ 2.5x cachetools ``@cached``, msgpack mode ≤ 6x; and with
  valgrind, instructions per hit next to the times, objects ≤ 1.0x / msgpack ≤ 1.5x cachetools ``@cachedmethod``
  (issue 22; the cache found by ``operator.attrgetter``, as in ``shared/tools/hitpath_instr.py``).
* ``drivers``: hit, miss and set through ``Cache`` against diskcache, redis-py and boto3 (moto) doing the same
  job, plus ``get_many`` against MGET. Targets: filesystem hit ≤ 1.3x, Redis hit ≤ 1.15x, get_many ≤ 1.3x.
* ``async``: a cached ``async def`` hit on Redis (native ``redis.asyncio``) against a raw ``redis.asyncio`` GET +
  decode, sequentially and in 50-wide ``asyncio.gather`` bursts. Targets: ≤ 1.2x both.
* ``plugin``: a cached ``count()``/``get()`` of an s3db resource against the uncached call, and the mixed
  workload's hit rate with precise invalidation against clearing the whole resource on each write.
* ``scale``: one write's invalidation with 1,000 to 1,000,000 entries cached, per driver (target: the largest
  at most 2x the smallest), and the entries alive and orphaned after 1,000,000 writes.
* ``django``: ``cache.get`` of a 10-field dict through ``cachekit.django.CachekitCache`` on Redis against
  Django's ``RedisCache`` and django-redis (target <= 1.1x), with a memory tier in front (target: 10x faster
  than ``RedisCache``), and ``aget`` against the built-in's (a thread per call).
* ``freshness``: the freshness policies (issue 21): instructions per hit with them on vs off (target <= 1.15x),
  a hot key expiring under 50 readers (p99 with ``stale_while_revalidate`` <= 1.5x a plain hit's), XFetch
  under Zipf reads (reads waiting and source calls per expiry, with and without ``early_refresh``).
* ``hitratio``: not a timing: the share of reads each eviction policy serves (cachekit LRU and W-TinyLFU,
  cachetools LRU, theine) on a Zipf trace with scans and a loop trace at 1 % and 10 % capacity, and with valgrind
  the instructions of a method hit under ``tinylfu`` against ``lru`` (target ≤ 1.1x).
* ``fuzz``: not a timing: :meth:`Codec.decode` against >= 100,000 hostile blobs in a child process under an
  address-space limit, counted by outcome; the target is that nothing but ``CorruptEntryError`` escapes.

Every ratio compares rows measured in one interleaved group (see ``tests/bench/README.md`` for the method).
The machine's Redis (``--redis-url``) gets keys under a unique prefix, deleted at exit; moto is started on a
free loopback port. A row whose library or server is missing is skipped with a note.

E.g.::

    cachekit bench --quick --only memory
    cachekit bench --json bench.json
    python -m cachekit._tools.bench --only drivers,plugin
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import importlib.util
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ._core import Section, Settings
from ._report import load_average, machine_info, print_section, write_json
from ._services import Services

__all__ = ["SECTIONS", "main", "run"]

#: Section names in the order they run.
SECTIONS = ("memory", "drivers", "async", "plugin", "scale", "fuzz", "django", "freshness", "hitratio")
_DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
_SCHEMA = 1


def _parse(args: Sequence[str]) -> argparse.Namespace:
    """The options; a usage mistake raises ``cachekit._tools.cli.UsageError``, as in every ``cachekit`` command."""
    from cachekit._tools.cli import ArgumentParser

    parser = ArgumentParser(
        prog="cachekit bench",
        description="Time cachekit against cachetools, cachebox, diskcache, redis-py and boto3 in one run.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="fewer operations and rounds (about 2 min on a busy 2-core machine, every section; "
                             "progress on stderr)")
    parser.add_argument("--only", metavar="SECTION[,SECTION]", default=",".join(SECTIONS),
                        help=f"sections to run, comma-separated: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE ('-': stdout)")
    parser.add_argument("--instructions", action=argparse.BooleanOptionalAction, default=None,
                        help="count instructions per hit under valgrind for the memory rows (default: on, "
                             "off with --quick; n/a without valgrind)")
    parser.add_argument("--redis-url", default=_DEFAULT_REDIS_URL,
                        help=f"the Redis for the driver rows (default {_DEFAULT_REDIS_URL})")
    options = parser.parse_args(list(args))
    chosen = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown or not chosen:
        parser.error(f"--only takes {', '.join(SECTIONS)} (comma-separated); got {options.only!r}")
    options.sections = [name for name in SECTIONS if name in chosen]
    if options.json and options.json != "-":
        problem = _unwritable(options.json)
        if problem:
            parser.error(f"--json {options.json}: {problem}")  # now, not after minutes of work
    return options


def _unwritable(path: str) -> str | None:
    """Why the JSON report could not be written to ``path``, or ``None``; nothing is created or changed."""
    target = Path(path).expanduser()
    folder = target.parent
    if target.is_dir():
        return "is a directory; give a file name"
    if not folder.is_dir():
        return f"directory {str(folder)!r} does not exist"
    if not os.access(target if target.exists() else folder, os.W_OK):
        return "not writable"
    return None


#: What some sections cannot run without (other rows skip a missing library with a note).
_NEEDS = {"memory": ("diskcache",), "drivers": ("diskcache", "msgpack"), "scale": ("diskcache",),
          "hitratio": ("cachetools",)}


def _missing(sections: Sequence[str]) -> list[str]:
    wanted = dict.fromkeys(name for section in sections for name in _NEEDS.get(section, ()))
    return [name for name in wanted if importlib.util.find_spec(name) is None]


def _runner(name: str) -> Callable[[Settings, Services], Section]:
    if name == "memory":
        from ._memory import run_memory

        return lambda settings, _services: run_memory(settings)
    if name == "drivers":
        from ._drivers import run_drivers

        return run_drivers
    if name == "async":
        from ._async import run_async

        return run_async
    if name == "scale":
        from ._scale import run_scale

        return run_scale
    if name == "fuzz":
        from ._fuzz import run_fuzz

        return run_fuzz
    if name == "django":
        from ._django import run_django

        return run_django
    if name == "freshness":
        from ._fresh import run_fresh

        return run_fresh
    if name == "hitratio":
        from ._hitratio import run_hitratio

        return lambda settings, _services: run_hitratio(settings)
    from ._plugin import run_plugin

    return run_plugin


def run(
    sections: Sequence[str] = SECTIONS,
    *,
    quick: bool = False,
    redis_url: str = _DEFAULT_REDIS_URL,
    instructions: bool | None = None,
    progress: Callable[[Section], None] | None = None,
    starting: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run ``sections`` and return the report (what ``--json`` writes); ``progress`` sees each finished section,
    ``starting`` the name of each section about to run.

    ``instructions``: count instructions per memory hit under valgrind (``None``: on, off in quick mode).

    E.g.::

        report = run(["memory"], quick=True)
        report["sections"]["memory"]["rows"][0]["median_ns"]
    """
    settings = Settings.quick() if quick else Settings()
    if instructions is not None:
        settings = dataclasses.replace(settings, instructions=instructions)
    started, clock = _dt.datetime.now(_dt.timezone.utc), time.perf_counter()
    machine = machine_info()
    done: dict[str, Any] = {}
    with Services(redis_url=redis_url) as services:
        for name in sections:
            if starting is not None:
                starting(name)
            began = time.perf_counter()
            section = _runner(name)(settings, services)
            section.seconds = round(time.perf_counter() - began, 2)
            done[name] = section.as_dict()
            if progress is not None:
                progress(section)
    machine["load_average_end"] = load_average()
    return {
        "schema": _SCHEMA, "tool": "cachekit bench", "mode": settings.mode, "started_at": started.isoformat(),
        "seconds": round(time.perf_counter() - clock, 2), "machine": machine,
        "method": {
            "figure": "ns per operation: median over rounds of the round's figure, which is batch time / operations "
                      "(batch-timed rows) or the batch's median operation (per-op rows)",
            "figure_per_op": "per-operation rows: the p50 of every operation pooled over rounds (as the table shows)",
            "ratio": "row figure / reference figure, as shown; both rows in one interleaved group ('paired_ratios': "
                     "median over rounds of the per-round ratio)",
            "percentiles": "per-operation samples pooled over rounds (per-operation rows only)",
            "settings": vars(settings),
        },
        "sections": done,
    }


def main(args: Sequence[str] | None = None) -> int:
    """The ``cachekit bench`` command; returns the exit status: 0 (also when a target is missed), 2 for a usage
    mistake (one line on stderr).

    E.g.::

        main(["--quick", "--only", "memory", "--json", "bench.json"])
    """
    from cachekit._tools.cli import EXIT_USAGE, UsageError
    from cachekit.errors import DriverNotFound

    try:
        options = _parse(sys.argv[1:] if args is None else args)
    except UsageError as exc:
        print(f"cachekit bench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    missing = _missing(options.sections)
    if missing:
        print(f"cachekit bench: error: the benchmark needs {', '.join(missing)}: pip install 'cachekit-orm[bench]'",
              file=sys.stderr)
        return EXIT_USAGE
    print(f"cachekit bench ({'quick' if options.quick else 'full'}): {', '.join(options.sections)}", file=sys.stderr)
    # With --json - the JSON owns stdout, so the tables go to stderr.
    stream = sys.stderr if options.json == "-" else sys.stdout
    count = len(options.sections)

    def starting(name: str) -> None:
        number = options.sections.index(name) + 1
        print(f"[{number}/{count}] {name} ...", file=sys.stderr, flush=True)

    def finished(section: Section) -> None:
        print_section(section, stream)
        print(f"  {section.name}: {section.seconds:.1f} s", file=sys.stderr, flush=True)

    try:
        report = run(options.sections, quick=options.quick, redis_url=options.redis_url,
                     instructions=options.instructions, progress=finished, starting=starting)
    except (DriverNotFound, ModuleNotFoundError) as exc:  # a library the checks above did not foresee
        print(f"cachekit bench: error: {exc}; the benchmark's libraries: pip install 'cachekit-orm[bench]'",
              file=sys.stderr)
        return EXIT_USAGE
    if options.json:
        write_json(options.json, report)
    return 0
