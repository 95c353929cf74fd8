"""Instructions per Redis hit (client side) of a ``@cached`` read on an unsigned Redis namespace, with redis-py's
own ``GET`` as the reference row in the same run (issue 19: bounded ``GETRANGE`` reads must cost no more).

Same method as ``/work/shared/tools/hitpath_instr.py``: under valgrind's callgrind, each mode runs twice in a
child process (0 hits and N hits, same imports and warm-up); the difference over N is one hit's cost. Needs the
machine's Redis (127.0.0.1:6379, db 0; its keys are under a prefix of its own, removed afterwards). Usage::

    PYTHONPATH=$PWD python tests/bench/redis_hitpath.py [--hits 5000]      (needs valgrind)
"""

from __future__ import annotations

import json
import sys

from cachekit._tools.bench._instructions import callgrind_instructions

CHILD = r'''
import sys, uuid
n, mode = int(sys.argv[2]), sys.argv[1]
import redis
prefix = "cachekit-instr:" + uuid.uuid4().hex[:8] + ":"
REC = {"id": "u1", "name": "Ann", "age": 41}
if mode == "redis_py":
    c = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    c.set(prefix + "k", b"x" * 60, ex=60)
    call = lambda id: c.get(prefix + "k")
else:
    from cachekit import Cache, cached
    cache = Cache("redis", namespace="instr", config={"url": "redis://127.0.0.1:6379/0", "key_prefix": prefix})
    class R:
        name = "users"
        def __init__(self): self.cache = cache
        @cached(action="get")
        def get(self, id): return REC
    r = R(); call = r.get
for _ in range(200): call("u1")
for _ in range(n): call("u1")
c2 = redis.Redis.from_url("redis://127.0.0.1:6379/0")
keys = list(c2.scan_iter(match=prefix + "*"))
if keys: c2.unlink(*keys)
'''


def instructions(mode: str, n: int) -> int:
    return callgrind_instructions(["-c", CHILD, mode, str(n)])


def main() -> None:
    hits = int(sys.argv[sys.argv.index("--hits") + 1]) if "--hits" in sys.argv else 5000
    per = {mode: round((instructions(mode, hits) - instructions(mode, 0)) / hits)
           for mode in ("redis_py", "cachekit_redis")}
    print(json.dumps(per), f"cachekit/redis-py={per['cachekit_redis'] / per['redis_py']:.3f}")


if __name__ == "__main__":
    main()
