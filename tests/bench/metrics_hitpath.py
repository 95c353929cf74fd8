"""Instructions per memory-cache hit with metrics off, on (Prometheus, OpenTelemetry) and with an event listener.

Same method as ``/work/shared/tools/hitpath_instr.py``: under valgrind's callgrind, each mode runs twice in a
child process (0 hits and N hits, same imports and warm-up) and the difference over N is one hit's cost.
``baseline`` is the library with nothing observed (the class code); ``after_disable`` turns metrics on and off
again first (it must cost what ``baseline`` costs). Usage, from the repository root::

    PYTHONPATH=$PWD python tests/bench/metrics_hitpath.py [--hits 20000]      (needs valgrind)
"""

from __future__ import annotations

import json
import sys

from cachekit._tools.bench._instructions import callgrind_instructions

CHILD = r'''
import sys
n, mode, store = int(sys.argv[2]), sys.argv[1], sys.argv[3]
REC = {"id": "u1", "name": "Ann", "age": 41, "active": True, "score": 3.5, "tags": ["a", "b"],
       "region": "eu", "meta": {"k": 1}, "nothing": None, "email": "ann@example.com"}
from cachekit import Cache, cached
import cachekit.metrics
if mode in ("prometheus", "both", "after_disable"):
    import prometheus_client
    cachekit.metrics.enable_prometheus(prometheus_client.CollectorRegistry())
if mode in ("otel", "both"):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    cachekit.metrics.enable_otel(MeterProvider(metric_readers=[InMemoryMetricReader()]))
cfg = {"max_size": 10000}
if store == "objects":
    cfg["store"] = "objects"
cache = Cache(driver="memory", ttl=600, config=cfg)
if mode == "after_disable":
    cachekit.metrics.disable()
if mode == "events":
    seen = []
    cache.on("hit", lambda event: seen.append(1) if len(seen) < 10 else None)
class Repo:
    name = "users"
    def __init__(self): self.cache = cache
    @cached(action="get")
    def get(self, id): return REC
r = Repo(); call = lambda id: r.get(id)
for _ in range(300): call("u1")
for _ in range(n): call("u1")
'''

MODES = ["baseline", "after_disable", "prometheus", "otel", "both", "events"]


def instructions(mode: str, store: str, n: int) -> int:
    return callgrind_instructions(["-c", CHILD, mode, str(n), store])


def main() -> None:
    hits = int(sys.argv[sys.argv.index("--hits") + 1]) if "--hits" in sys.argv else 20000
    for store in ("msgpack", "objects"):
        per = {mode: (instructions(mode, store, hits) - instructions(mode, store, 0)) / hits for mode in MODES}
        base = per["baseline"]
        print(store, json.dumps({k: round(v) for k, v in per.items()}))
        print(store, " ".join(f"{mode}={per[mode] / base:.3f}x" for mode in MODES))


if __name__ == "__main__":
    main()
