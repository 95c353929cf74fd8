"""Instructions per ``@cached`` hit with fleet stats off and on (``Cache(publish_stats=...)``, issue 20).

Same method as ``/work/shared/tools/hitpath_instr.py``: under valgrind's callgrind, each mode runs twice in a child
process (0 hits and N hits, same imports, warm-up and first published record) and the difference over N is one
hit's cost. A fleet needs a shared backend, so the caches are a directory (``filesystem``, every hit a SQLite
read) and a memory tier in front of one (``tiered``, the hits served by L1). Usage, from the repository root::

    PYTHONPATH=$PWD python tests/bench/fleet_hitpath.py [--hits 20000]      (needs valgrind)
"""

from __future__ import annotations

import json
import sys
import tempfile

from cachekit._tools.bench._instructions import callgrind_instructions

CHILD = r'''
import sys, time
n, mode, layout, directory = int(sys.argv[2]), sys.argv[1], sys.argv[3], sys.argv[4]
REC = {"id": "u1", "name": "Ann", "age": 41, "active": True, "score": 3.5, "tags": ["a", "b"],
       "region": "eu", "meta": {"k": 1}, "nothing": None, "email": "ann@example.com"}
from cachekit import Cache, cached
publish = 3600 if mode == "fleet" else False
disk = {"driver": "filesystem", "config": {"directory": directory}}
if layout == "tiered":
    cache = Cache(drivers=[{"driver": "memory"}, disk], ttl=600, publish_stats=publish)
else:
    cache = Cache(driver="filesystem", ttl=600, config=disk["config"], publish_stats=publish)
if cache.stats_publisher is not None:  # the first record is written at once by the background thread
    while not cache.stats_publisher.published:
        time.sleep(0.001)
class Repo:
    name = "users"
    def __init__(self): self.cache = cache
    @cached(action="get")
    def get(self, id): return REC
r = Repo(); call = lambda id: r.get(id)
for _ in range(300): call("u1")
for _ in range(n): call("u1")
'''

MODES = ["off", "fleet"]


def instructions(mode: str, layout: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as directory:
        return callgrind_instructions(["-c", CHILD, mode, str(n), layout, directory])


def main() -> None:
    hits = int(sys.argv[sys.argv.index("--hits") + 1]) if "--hits" in sys.argv else 20000
    for layout in ("tiered", "filesystem"):
        per = {mode: (instructions(mode, layout, hits) - instructions(mode, layout, 0)) / hits for mode in MODES}
        print(layout, json.dumps({k: round(v) for k, v in per.items()}),
              f"fleet/off={per['fleet'] / per['off']:.3f}x (+{per['fleet'] - per['off']:.0f} per hit)")


if __name__ == "__main__":
    main()
