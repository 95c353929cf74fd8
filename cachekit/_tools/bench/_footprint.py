"""Memory rows of the ``memory`` section (issue 22): what cached records hold, and whether ``max_size`` bounds it.

Each figure comes from its own child process (tracemalloc and RSS of a fresh interpreter), through a decorated
repository's ``get()`` of a 10-field record, each id read twice (the second read keeps the decoded value):

* ``per_entry``: traced bytes added by 10,000 distinct gets, per get, default driver options (``max_size`` 1000);
* ``capped_growth``: traced bytes added by 100,000 distinct gets after 2,000 of warm-up with ``max_size=1000``
  (what the process grows by once the cache is full; the driver's 1,000 live entries were all allocated during
  the run, so they count), and the RSS growth over the same run.

Targets: at most 450 B per entry (the original s3db.js holds 473 B), at most 1 MiB of capped growth. Not run by
``--quick`` (about a minute).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ._core import Outcome, Section
from ._instructions import project_root

__all__ = ["CHILD", "add_footprint"]

PER_ENTRY_TARGET = 450
CAPPED_TARGET_KB = 1024

CHILD = r"""
import gc, json, sys, tracemalloc
import psutil
from cachekit import Cache, cached
mode = sys.argv[1]
def rec(i):
    return {"id": f"u{i}", "name": "Ann", "age": 41, "active": True, "score": 3.5, "tags": ["a", "b"],
            "region": "eu", "meta": {"k": 1}, "nothing": None, "email": f"ann{i}@example.com"}
cache = Cache(driver="memory", ttl=600, config={} if mode == "per_entry" else {"max_size": 1000})
class Repo:
    name = "users"
    def __init__(self): self.cache = cache
    @cached(action="get")
    def get(self, id): return rec(id)
r = Repo()
warm, runs = (range(-200, 0), range(10_000)) if mode == "per_entry" else (range(2000), range(2000, 102_000))
for i in warm: r.get(i); r.get(i)
gc.collect(); rss = psutil.Process().memory_info().rss
tracemalloc.start(); base = tracemalloc.get_traced_memory()[0]
for i in runs: r.get(i); r.get(i)
gc.collect()
print(json.dumps({"traced": tracemalloc.get_traced_memory()[0] - base, "gets": len(runs),
                  "rss": psutil.Process().memory_info().rss - rss}))
"""


def _child(mode: str) -> dict[str, int]:
    root = str(project_root())  # the cachekit being benchmarked
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, env=env, timeout=900,
                         check=True)
    found: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def add_footprint(section: Section) -> None:
    """Append the per-entry and capped-growth outcomes (or a note saying why there are none)."""
    try:
        per, capped = _child("per_entry"), _child("capped")
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        section.notes.append(f"memory rows: n/a ({type(exc).__name__}: {exc})")
        return
    per_entry = per["traced"] / per["gets"]
    growth_kb = capped["traced"] / 1024
    section.outcomes += [
        Outcome("memory_per_entry", "bytes per cached 10-field record (tracemalloc, 10,000 gets)", round(per_entry),
                "B", f"≤ {PER_ENTRY_TARGET} B (s3db.js 473 B)", "PASS" if per_entry <= PER_ENTRY_TARGET else "MISS",
                f"RSS +{per['rss'] / 1024:,.0f} KB"),
        Outcome("memory_capped_growth", "growth after 100,000 distinct gets, max_size=1000 (tracemalloc)",
                round(growth_kb), "KB", f"≤ {CAPPED_TARGET_KB} KB", "PASS" if growth_kb <= CAPPED_TARGET_KB else "MISS",
                f"RSS +{capped['rss'] / 1024:,.0f} KB; the driver's 1,000 live entries count (allocated in the run)"),
    ]
