"""Section ``async`` (issue 11): a cached ``async def`` hit on Redis against raw ``redis.asyncio``, same run.

Two groups on one event loop: sequential awaits, and 50-wide ``asyncio.gather`` bursts (reported per call). The
raw rows GET the same record, stored as plain msgpack bytes, through their own ``redis.asyncio`` client and
decode it: the job cachekit does, minus cachekit. A third row in each group awaits the sync ``Cache.get`` in
``asyncio.to_thread``: the path ``async def`` reads took before the native async drivers.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ._core import RECORD, Batch, BatchRunner, Case, Row, Section, Settings, make_row, measure
from ._instructions import count_instructions, instructions_off
from ._services import Services

__all__ = ["run_async"]

_WIDTH = 50
_TARGET = 1.2


def async_per_op_timer(loop: asyncio.AbstractEventLoop, op: Callable[[], Awaitable[object]]) -> BatchRunner:
    """Time each ``await op()`` on ``loop`` separately (GC off during the batch), as :func:`per_op_timer` does."""

    async def timed(ops: int) -> list[int]:
        clock = time.perf_counter_ns
        samples = [0] * ops
        for i in range(ops):
            start = clock()
            await op()
            samples[i] = clock() - start
        return samples

    def run(ops: int) -> Batch:
        enabled = gc.isenabled()
        gc.disable()
        try:
            samples = loop.run_until_complete(timed(ops))
        finally:
            if enabled:
                gc.enable()
        return Batch(sum(samples), ops, samples)

    return run


def _repo(cache: Any) -> Any:
    from cachekit import cached

    class Repo:
        name = "users"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get")
        async def get(self, id: str) -> dict[str, Any]:
            return dict(RECORD)

    return Repo()


def instruction_child(row_id: str, hits: int, warmup: int, url: str, prefix: str) -> None:
    """The process :mod:`._instructions` runs under callgrind: ``hits`` sequential hits of one row after setup."""
    import msgpack
    import redis.asyncio

    from cachekit import Cache

    async def main() -> None:
        raw = redis.asyncio.Redis.from_url(url)
        cache = Cache("redis", namespace="bench-async-instr", config={"url": url, "key_prefix": prefix + "ick:"})
        try:
            await raw.set(prefix + "iraw:hit", msgpack.packb(RECORD), px=300_000)
            repo = _repo(cache)
            await repo.get("u1")
            unpack, key = msgpack.unpackb, prefix + "iraw:hit"
            for _ in range(warmup + hits):  # both runs (0 and N hits) do the same warm-up
                if row_id == "async_seq_raw":
                    unpack(await raw.get(key))
                else:
                    await repo.get("u1")
        finally:
            await raw.aclose()
            await cache.driver.aclose()

    asyncio.run(main())


def _add_instructions(section: Section, settings: Settings, services: Services) -> None:
    """Instructions per sequential hit (valgrind) for the raw and the cachekit row; the ratio on the latter."""
    rows: dict[str, Row] = {row.id: row for row in section.rows}
    wanted = ["async_seq_raw", "async_seq_cachekit"]
    counted = (count_instructions(wanted, settings.async_instruction_hits,
                                  (services.redis_url, services.redis_prefix))
               if settings.instructions else instructions_off())
    if isinstance(counted, str):
        section.notes.append(f"instructions per hit: n/a, {counted}")
        for row_id in wanted:
            rows[row_id].extra["instructions"] = None
        return
    for row_id in wanted:
        rows[row_id].extra["instructions"] = round(counted[row_id])
    rows["async_seq_cachekit"].extra["instructions_ratio"] = {
        "async_seq_raw": counted["async_seq_cachekit"] / counted["async_seq_raw"]}
    section.notes.append(
        f"instructions per sequential hit: valgrind callgrind in a child process with its own loop and clients, "
        f"({settings.async_instruction_hits:,} hits - 0 hits) / {settings.async_instruction_hits:,}; user-space "
        "instructions of the client side (redis-py's and cachekit's Python, the event loop, the socket calls)"
    )


def _gather(op: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
    async def burst() -> object:
        return await asyncio.gather(*(op() for _ in range(_WIDTH)))

    return burst


def run_async(settings: Settings, services: Services) -> Section:
    """The sequential and the 50-wide groups; skipped with a note without Redis."""
    section = Section("async", "Async Redis hit: cached async def against raw redis.asyncio GET + decode, same run")
    sync_client = services.redis_or_reason()
    if isinstance(sync_client, str):
        section.skipped.append(f"async: {sync_client}")
        return section
    import msgpack
    import redis.asyncio

    from cachekit import Cache

    raw_key = services.redis_prefix + "araw:hit"
    sync_client.set(raw_key, msgpack.packb(RECORD), px=300_000)
    config = {"url": services.redis_url, "key_prefix": services.redis_prefix + "ack:"}
    loop = asyncio.new_event_loop()
    raw = redis.asyncio.Redis.from_url(services.redis_url)
    cache = Cache("redis", namespace="bench-async", config=config)
    try:
        repo = _repo(cache)
        loop.run_until_complete(repo.get("u1"))  # the miss that fills the entry
        cache.set("hit", RECORD)
        unpack = msgpack.unpackb

        async def raw_hit() -> object:
            return unpack(await raw.get(raw_key))

        async def cached_hit() -> object:
            return await repo.get("u1")

        async def threaded_hit() -> object:
            return await asyncio.to_thread(cache.get, "hit")

        ops = {"seq": settings.ops_redis, "gather": settings.ops_redis_many}
        for group, wrap, per, suffix in (("seq", lambda op: op, 1, ""), ("gather", _gather, _WIDTH, " [per call]")):
            width = f" ({_WIDTH}-wide gather)" if per > 1 else " (sequential)"
            cases = [
                Case(f"async_{group}_raw", f"redis.asyncio: GET + msgpack decode{width}{suffix}",
                     async_per_op_timer(loop, wrap(raw_hit)), ops[group], per=per),
                Case(f"async_{group}_cachekit", f"cachekit @cached async def hit{width}{suffix}",
                     async_per_op_timer(loop, wrap(cached_hit)), ops[group], per=per),
                Case(f"async_{group}_to_thread", f"Cache.get in asyncio.to_thread (the old path){width}{suffix}",
                     async_per_op_timer(loop, wrap(threaded_hit)), ops[group], per=per),
            ]
            found = measure(cases, settings.rounds_io)
            reference = f"async_{group}_raw"
            section.rows.append(make_row(found, reference, reference))
            section.rows.append(make_row(found, f"async_{group}_cachekit", reference, target=_TARGET))
            section.rows.append(make_row(found, f"async_{group}_to_thread", reference))
    finally:
        loop.run_until_complete(raw.aclose())
        loop.run_until_complete(cache.driver.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        cache.close()
    _add_instructions(section, settings, services)
    section.notes.append(
        f"One event loop; per-operation timing (GC off). A gather row times one {_WIDTH}-wide asyncio.gather and "
        "reports it per call. Raw rows use their own redis.asyncio client; cachekit's driver keeps one per loop."
    )
    return section
