"""The native async half of :class:`~cachekit.drivers.redis.RedisDriver`, through ``redis.asyncio``.

An asyncio client and its connections belong to the event loop that first used them, so the driver keeps one
client per running loop (:class:`LoopClients`): built lazily from the same URL or address, ``key_prefix``,
timeouts and retry policy as the sync client, and closed when its loop shuts down (``asyncio.run`` and
``asyncio.Runner`` finalize async generators before closing the loop; each client is tied to one such
generator), or by :meth:`~AsyncRedisCommands.aclose` / :meth:`~cachekit.drivers.redis.RedisDriver.close`.
A loop that is closed without that shutdown step (a hand-run loop, ``loop.close()`` alone) leaves its client
to the garbage collector; call ``await driver.aclose()`` on such a loop before closing it.

Every command goes through the driver's circuit breaker (shared with the sync half: an outage seen by either
opens it for both), and errors map as on the sync path: an open breaker raises
:class:`~cachekit.errors.CircuitOpenError`, a server that cannot be reached
:class:`~cachekit.errors.DriverUnavailable`, any other failure :class:`~cachekit.errors.DriverError`.
A driver built on a ready sync ``client=`` has no async client to derive; its async twins then run the sync
methods on cachekit's executor (``supports_async`` is ``False`` on that instance).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from cachekit._types import MISSING, Missing
from cachekit.drivers._limits import bounded_blobs, oversized
from cachekit.drivers._redis_commands import (
    _BATCH,
    _FAILURES,
    _GLOB_ESCAPES,
    _INTERNAL,
    _REPLACE_SCRIPT,
    _SCAN_COUNT,
    _px,
    _verdict,
)
from cachekit.drivers._redis_config import AsyncClient
from cachekit.drivers.base import Driver
from cachekit.errors import DriverError

if TYPE_CHECKING:
    from cachekit._types import Clock
    from cachekit.breaker import CircuitBreaker

__all__ = ["AsyncRedisCommands", "LoopClients"]

_T = TypeVar("_T")

#: What the asyncio transport may raise beside redis-py's own errors: the server cannot be reached.
_TRANSPORT: Final = (OSError, asyncio.TimeoutError)
_AFAILURES: Final = (*_FAILURES, *_TRANSPORT)
#: How long a sync close() waits for a loop running in another thread to close its client.
_CROSS_THREAD_CLOSE_SECONDS: Final = 2.0


class LoopClients:
    """One ``redis.asyncio`` client per running event loop, built by ``factory`` on the loop's first call.

    E.g.::

        clients = LoopClients(lambda: redis.asyncio.Redis.from_url(url))
        client = clients.current() or await clients.create()
        ...
        await clients.aclose()        # this loop's client; close_all() for every loop's, from sync code
    """

    def __init__(self, factory: Callable[[], AsyncClient]) -> None:
        self._factory = factory
        # Plain dicts, not weak ones: a client's connections refer to their loop, so a weak key would never
        # die anyway. Entries go when the loop shuts down (the hook's ``finally``), or, for a loop closed
        # without that step, at the next create() on any loop.
        # loop -> the generator whose ``finally`` closes that loop's client (asyncio finalizes it at shutdown)
        self._hooks: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._clients: dict[asyncio.AbstractEventLoop, AsyncClient] = {}
        self._recent: tuple[asyncio.AbstractEventLoop | None, AsyncClient | None] = (None, None)
        self._lock = threading.RLock()
        self._pending: set[asyncio.Future[Any]] = set()
        self.closed = False

    def current(self) -> AsyncClient | None:
        """The running loop's client, or ``None`` before its first :meth:`create`."""
        loop = asyncio.get_running_loop()
        recent = self._recent
        if recent[0] is loop:
            return recent[1]
        client = self._clients.get(loop)
        if client is not None:
            self._recent = (loop, client)
        return client

    async def create(self) -> AsyncClient:
        """The running loop's client, built now if it has none (no I/O: redis-py connects on first command)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self.closed:
                raise DriverError("this Redis driver is closed; create a new driver")
            client = self._clients.get(loop)
            if client is not None:
                return client
            self._forget_closed_loops()
            client = self._clients[loop] = self._factory()
            hook = self._hooks[loop] = self._close_at_shutdown(loop, client)
        # The first step runs up to the hook's ``yield`` and registers it with this loop's async generators.
        await hook.asend(None)
        self._recent = (loop, client)
        return client

    async def _close_at_shutdown(
        self, loop: asyncio.AbstractEventLoop, client: AsyncClient
    ) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            self._forget(loop)
            if not loop.is_closed():
                with contextlib.suppress(Exception):
                    await client.aclose()

    def _forget(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._clients.pop(loop, None)
            self._hooks.pop(loop, None)
            if self._recent[0] is loop:
                self._recent = (None, None)

    def _forget_closed_loops(self) -> None:
        # Loops closed without finalizing their async generators: their clients cannot be awaited any more.
        for loop in [loop for loop in self._hooks if loop.is_closed()]:
            hook = self._hooks.pop(loop)
            self._clients.pop(loop, None)
            _finish_without_loop(hook)

    async def aclose(self) -> None:
        """Close the running loop's client (the next call builds a new one unless the driver is closed)."""
        hook = self._hooks.get(asyncio.get_running_loop())
        if hook is not None:
            await hook.aclose()

    def close_all(self) -> None:
        """From sync code: close every loop's client where that loop can still run it; refuse new clients."""
        with self._lock:
            self.closed = True
            hooks = list(self._hooks.items())
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, hook in hooks:
            if loop.is_closed():
                self._forget(loop)
                _finish_without_loop(hook)
            elif loop is running:
                task = loop.create_task(hook.aclose())
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            elif loop.is_running():
                future = asyncio.run_coroutine_threadsafe(hook.aclose(), loop)
                with contextlib.suppress(Exception):
                    future.result(_CROSS_THREAD_CLOSE_SECONDS)
            elif running is None:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(hook.aclose())
            else:  # another loop runs in this thread: that one cannot be driven from here
                self._forget(loop)


def _finish_without_loop(hook: AsyncGenerator[None, None]) -> None:
    """Run a hook's ``finally`` synchronously; its loop is closed, so it awaits nothing."""
    closing = hook.aclose()
    try:
        closing.send(None)
    except (StopIteration, Exception):  # finished, or it cannot finish: nothing is left to release either way
        pass
    finally:
        closing.close()


class AsyncRedisCommands(Driver):
    """The async twins of :class:`~cachekit.drivers.redis.RedisDriver`'s methods (its base class)."""

    _aclients: LoopClients | None
    _prefix: str
    _clock: Clock
    breaker: CircuitBreaker

    def _failure(self, exc: Exception, command: str) -> DriverError:
        raise NotImplementedError  # the sync driver's error mapping (with redaction), shared by both halves

    async def _acall(self, command: Callable[[AsyncClient], Awaitable[_T]], name: str) -> _T:
        """``await command(client)`` through the breaker and the error mapping, as the sync ``call`` does."""
        clients = self._aclients
        assert clients is not None
        breaker = self.breaker
        probe = breaker.enter()
        try:
            result = await command(clients.current() or await clients.create())
        except _AFAILURES as exc:
            raise self._afailed(probe, exc, name) from exc
        except BaseException as exc:
            breaker.exit(probe, exc, "ok")
            raise
        breaker.exit(probe)
        return result

    def _afailed(self, probe: bool, exc: BaseException, name: str) -> DriverError:
        if isinstance(exc, _TRANSPORT) and not isinstance(exc, redis.RedisError):
            timed_out = isinstance(exc, asyncio.TimeoutError)
            exc = (redis.TimeoutError if timed_out else redis.ConnectionError)(f"{type(exc).__name__}: {exc}")
        self.breaker.exit(probe, exc, _verdict(exc))
        return self._failure(cast(Exception, exc), name)

    # -- reads ---------------------------------------------------------------------------------------------

    async def aget(self, key: str) -> bytes | Missing:
        """``GET`` through the running loop's ``redis.asyncio`` client (the hot path: no closure)."""
        clients = self._aclients
        if clients is None:
            return await super().aget(key)
        breaker = self.breaker
        probe = breaker.enter()
        limit: int | None = getattr(self, "max_read_bytes", None)
        try:
            client = clients.current() or await clients.create()
            if limit is None:
                blob = await client.get(self._prefix + key)
            else:  # issue 19, item 6: at most limit + 1 bytes ("" is an absent key)
                blob = await client.getrange(self._prefix + key, 0, limit) or None
        except _AFAILURES as exc:
            raise self._afailed(probe, exc, "GET") from exc
        except BaseException as exc:
            breaker.exit(probe, exc, "ok")
            raise
        breaker.exit(probe)
        if blob is None:
            return MISSING
        if limit is not None and len(blob) > limit:
            raise oversized(key, limit)
        return cast(bytes, blob)

    async def aget_with_expiry(self, key: str) -> tuple[bytes, float | None] | Missing:
        """GET and PTTL in one pipelined round trip."""
        if self._aclients is None:
            return await super().aget_with_expiry(key)
        full = self._prefix + key
        limit: int | None = getattr(self, "max_read_bytes", None)

        async def get_and_pttl(client: AsyncClient) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                if limit is None:
                    pipe.get(full)
                else:
                    pipe.getrange(full, 0, limit)  # issue 19: bounded ("" is an absent key)
                pipe.pttl(full)
                return await pipe.execute()

        blob, pttl = await self._acall(get_and_pttl, "GET+PTTL")
        if not blob or pttl == -2:
            return MISSING
        if limit is not None and len(blob) > limit:
            raise oversized(key, limit)
        return blob, (None if pttl < 0 else self._clock() + pttl / 1000)

    async def aget_many(self, keys: Sequence[str]) -> list[bytes | Missing]:
        """One MGET (in a cluster, one per hash slot, pipelined per node); with a read limit, one pipelined
        ``GETRANGE`` per key (see :meth:`RedisDriver.get_many <cachekit.drivers.redis.RedisDriver.get_many>`)."""
        if self._aclients is None:
            return await super().aget_many(keys)
        if not keys:
            return []
        full = [self._prefix + key for key in keys]
        limit: int | None = getattr(self, "max_read_bytes", None)
        if limit is not None:  # issue 19: one pipelined GETRANGE per key, each bounded

            async def getranges(client: AsyncClient) -> list[bytes]:
                async with client.pipeline(transaction=False) as pipe:
                    for name in full:
                        pipe.getrange(name, 0, limit)
                    return cast("list[bytes]", await pipe.execute())

            return bounded_blobs(keys, await self._acall(getranges, "GETRANGE"), limit)

        async def mget(client: AsyncClient) -> list[bytes | None]:
            if isinstance(client, AsyncRedisCluster):
                return cast("list[bytes | None]", await client.mget_nonatomic(full))
            return cast("list[bytes | None]", await client.mget(full))

        return [MISSING if blob is None else blob for blob in await self._acall(mget, "MGET")]

    async def akeys(self, prefix: str = "") -> list[str]:
        """The stored keys under ``prefix``, without ``key_prefix``, sorted."""
        if self._aclients is None:
            return await super().akeys(prefix)
        start = len(self._prefix)
        raw_keys = await self._acall(lambda client: self._ascan(client, prefix), "SCAN")
        found = (raw.decode("utf-8", "replace")[start:] for raw in raw_keys)
        return sorted(key for key in found if not key.startswith(_INTERNAL))

    async def asize(self) -> int:
        """Number of keys under ``key_prefix`` (a full SCAN)."""
        return len(await self.akeys())

    # -- writes --------------------------------------------------------------------------------------------

    async def aset(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        """``SET key blob PX ms`` (``UNLINK`` for a TTL of 0)."""
        if self._aclients is None:
            return await super().aset(key, blob, ttl)
        px = _px(ttl)
        full = self._prefix + key
        if px == 0:
            await self._acall(lambda client: client.unlink(full), "UNLINK")
        else:
            await self._acall(lambda client: client.set(full, blob, px=px), "SET")
        return None

    async def aset_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """SET ... PX for every item, pipelined (not a transaction) in batches."""
        if self._aclients is None:
            return await super().aset_many(items, ttl)
        px = _px(ttl)
        if px == 0:
            await self.adelete_many(items)
            return None
        pairs = [(self._prefix + key, blob) for key, blob in items.items()]

        async def set_all(client: AsyncClient) -> None:
            for start in range(0, len(pairs), _BATCH):
                async with client.pipeline(transaction=False) as pipe:
                    for full, blob in pairs[start : start + _BATCH]:
                        pipe.set(full, blob, px=px)
                    await pipe.execute()

        await self._acall(set_all, "SET (pipeline)")
        return None

    async def aadd(self, key: str, blob: bytes, ttl: float | None = None) -> bool:
        """``SET key blob NX PX ms`` through ``redis.asyncio``; whether it was stored."""
        if self._aclients is None:
            return await super().aadd(key, blob, ttl)
        px = _px(ttl)
        full = self._prefix + key
        if px == 0:
            return not await self._acall(lambda client: client.exists(full), "EXISTS")
        return bool(await self._acall(lambda client: client.set(full, blob, nx=True, px=px), "SET NX"))

    async def areplace(self, key: str, expected: bytes, blob: bytes, ttl: float | None = None) -> bool:
        """Compare-and-set in one Lua call through ``redis.asyncio``."""
        if self._aclients is None:
            return await super().areplace(key, expected, blob, ttl)
        px = _px(ttl)
        full = self._prefix + key
        args = (expected, blob, "" if px is None else str(px))
        return bool(await self._acall(lambda client: client.eval(_REPLACE_SCRIPT, 1, full, *args), "EVAL (replace)"))

    async def adelete(self, key: str) -> bool:
        """``UNLINK``; whether the key was there."""
        if self._aclients is None:
            return await super().adelete(key)
        full = self._prefix + key
        return bool(await self._acall(lambda client: client.unlink(full), "UNLINK"))

    async def adelete_many(self, keys: Iterable[str]) -> int:
        """UNLINK in batches (in a cluster, redis-py splits each batch by hash slot)."""
        if self._aclients is None:
            return await super().adelete_many(keys)
        full = [self._prefix + key for key in keys]
        return await self._acall(lambda client: _aunlink(client, full), "UNLINK")

    async def aclear(self, prefix: str = "") -> int:
        """SCAN ``key_prefix + prefix*`` (every primary of a cluster) and UNLINK what it finds."""
        if self._aclients is None:
            return await super().aclear(prefix)

        async def clear(client: AsyncClient) -> int:
            return await _aunlink(client, await self._ascan(client, prefix))

        return await self._acall(clear, "SCAN+UNLINK")

    async def aclear_many(self, prefixes: Iterable[str]) -> int:
        """One SCAN over the prefixes' common prefix, removing the keys that start with any of them."""
        if self._aclients is None:
            return await super().aclear_many(prefixes)
        wanted = sorted({prefix for prefix in prefixes if prefix})
        if not wanted:
            return 0
        common = os.path.commonprefix(wanted)  # noqa: RUF071 - character-wise is what SCAN MATCH needs
        heads = tuple((self._prefix + prefix).encode() for prefix in wanted)

        async def clear(client: AsyncClient) -> int:
            return await _aunlink(client, [raw for raw in await self._ascan(client, common) if raw.startswith(heads)])

        return await self._acall(clear, "SCAN+UNLINK")

    async def aclose(self) -> None:
        """Close the running loop's async client, then the rest as :meth:`close` does. Safe to call twice."""
        if self._aclients is not None:
            await self._aclients.aclose()
        self.close()

    # -- internals -------------------------------------------------------------------------------------------

    async def _ascan(self, client: AsyncClient, prefix: str) -> list[bytes]:
        pattern = (self._prefix + prefix).translate(_GLOB_ESCAPES) + "*"
        # RedisCluster.scan_iter walks every primary in turn.
        return [raw async for raw in client.scan_iter(match=pattern, count=_SCAN_COUNT)]


async def _aunlink(client: AsyncClient, keys: Sequence[str | bytes]) -> int:
    removed = 0
    for start in range(0, len(keys), _BATCH):
        removed += int(await client.unlink(*keys[start : start + _BATCH]))
    return removed
