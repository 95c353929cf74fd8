"""What the sync and async halves of the Redis driver share per command.

Batching, SCAN glob escaping, TTL to ``PX``, the lock entries' key segment and release script, the error classes
redis-py raises and how each counts for the circuit breaker. :mod:`cachekit.drivers.redis` (sync) and
:mod:`cachekit.drivers.redis_async` (``redis.asyncio``) both import them from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final, cast

import redis
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException

from cachekit._types import normalize_ttl
from cachekit.breaker import Verdict
from cachekit.drivers._redis_config import Client

#: Lock entries live under ``{key_prefix}~lock/`` (cachekit keys never start with ``~``) and expire on their own.
_LOCK_SEGMENT = "~lock/"
#: Keys that are not entries: distributed locks and generation counters (``generations/redis.py``).
_INTERNAL = (_LOCK_SEGMENT, "~gen/")
#: Compare-and-delete of a lock entry, in one Lua call (``RedisDriver.release_lock``).
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

#: Compare-and-set of one entry, in one Lua call (``RedisDriver.replace``): ARGV = expected, new blob, PX in ms
#: ("" for no expiry, "0" to delete instead).
_REPLACE_SCRIPT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
    return 0
end
if ARGV[3] == '' then
    redis.call('set', KEYS[1], ARGV[2])
elseif ARGV[3] == '0' then
    redis.call('del', KEYS[1])
else
    redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""

#: Keys per UNLINK / pipeline, so one call never blocks the server on a huge argument list.
_BATCH: Final = 500
#: SCAN's COUNT hint: keys examined per round trip.
_SCAN_COUNT: Final = 1000
_GLOB_ESCAPES: Final = str.maketrans({char: "\\" + char for char in "\\*?[]"})
#: The server (or cluster) cannot be reached: the caller fails open and may retry later.
_UNAVAILABLE: Final = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, RedisClusterException)
#: Everything redis-py raises for a failed command.
_FAILURES: Final = (redis.RedisError, RedisClusterException)


def _verdict(exc: BaseException) -> Verdict:
    """How a failed command counts for the circuit breaker: a timeout trips it, an unreachable server is a
    failure, an error reply (the server answered) is not a failure of the backend."""
    if isinstance(exc, redis.TimeoutError):
        return "trip"
    return "failure" if isinstance(exc, _UNAVAILABLE) else "ok"


def _px(ttl: float | None) -> int | None:
    """Milliseconds for ``SET PX``: None = no expiry, 0 = already expired, else at least 1."""
    if ttl is None:
        return None
    seconds = normalize_ttl(ttl)
    assert seconds is not None
    return 0 if seconds == 0 else max(1, round(seconds * 1000))


def _mget(client: Client, keys: list[str]) -> list[bytes | None]:
    if isinstance(client, RedisCluster):
        # The keys spread over hash slots: one MGET per slot, pipelined per node.
        return cast("list[bytes | None]", client.mget_nonatomic(keys))
    return cast("list[bytes | None]", client.mget(keys))


def _getranges(client: Client, keys: list[str], end: bytes) -> list[bytes]:
    """At most ``end`` + 1 bytes of each key, pipelined in one round trip (issue 19: a bounded MGET; ``b""`` is
    an absent key). In a cluster the pipeline sends each node its keys."""
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.execute_command("GETRANGE", key, b"0", end)
        return cast("list[bytes]", pipe.execute())


def _unlink(client: Client, keys: Iterable[str | bytes]) -> int:
    # UNLINK after SCAN is safe: SCAN still returns every key present for the whole iteration.
    return sum(int(client.unlink(*batch)) for batch in _batches(iter(keys)))


def _batches(items: Iterator[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
