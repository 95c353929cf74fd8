"""The :class:`~cachekit.Cache` key/value API for ``async`` code: ``await cache.aget(key)`` and its siblings.

Each method is the twin of the sync one with the same arguments, results and fail-open rules, on the driver's
async twins (``redis.asyncio`` for Redis, inline for memory, cachekit's own thread pool for the filesystem and
S3), so none of them blocks the event loop. Generation bumps (``aclear``, ``ainvalidate_resource``) and anything
else that only has a sync path run through :func:`~cachekit._executor.run_blocking`: on the executor for a
blocking driver, inline for one that never waits on I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._async_namespace import aread
from ._executor import run_blocking
from ._types import DEFAULT, MISSING, TTL, normalize_ttl
from .scopes import NAMESPACE_SCOPE, Invalidation

if TYPE_CHECKING:
    from ._freshness import FreshState
    from .drivers import Driver
    from .generations.view import GenerationView

__all__ = ["AsyncCacheMixin"]


class AsyncCacheMixin:
    """``aget``, ``aset``, ``adelete``, ``aget_many``, ``aset_many``, ``aclear``, ``ainvalidate_resource``,
    ``ainvalidate``, ``aclose``: the async half of :class:`~cachekit.Cache`'s API (see the module docstring)."""

    driver: Driver
    ttl: float | None
    deletes: int
    hits: int
    misses: int
    sets: int
    _gens: GenerationView
    _fresh: FreshState

    if TYPE_CHECKING:

        def _full_key(self, key: str) -> str: ...
        def _full_prefix(self, prefix: str) -> str: ...
        def _blob(self, key: str, value: Any, ttl: float | None, max_payload: int | None) -> Any: ...
        def _decoded(self, key: str, raw: Any) -> Any: ...
        def _backend_failed(self, key: str | None, exc: BaseException) -> None: ...
        def _bump(self, scopes: list[str]) -> int: ...
        def invalidate(self, invalidation: Invalidation) -> int: ...

    async def aget(self, key: str, default: Any = None) -> Any:
        """The async twin of :meth:`Cache.get`: ``default`` on a miss, never raises for a broken backend."""
        value = await aread(self, self._full_key(key))  # type: ignore[arg-type]
        return default if value is MISSING else value

    async def aset(self, key: str, value: Any, ttl: TTL = DEFAULT) -> bool:
        """The async twin of :meth:`Cache.set`: whether the value was stored."""
        full = self._full_key(key)
        seconds = self.ttl if ttl is DEFAULT else normalize_ttl(ttl)
        blob = self._blob(full, value, seconds, None)
        if blob is MISSING:
            return False
        try:
            await self.driver.aset(full, blob, seconds)
        except Exception as exc:
            self._backend_failed(full, exc)
            return False
        self.sets += 1
        return True

    async def adelete(self, key: str) -> bool:
        """The async twin of :meth:`Cache.delete` (driver errors propagate: an explicit delete must work)."""
        removed = await self.driver.adelete(self._full_key(key))
        self.deletes += removed
        return removed

    async def aget_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """The async twin of :meth:`Cache.get_many`: the values found (misses left out), in one driver batch."""
        wanted = list(keys)
        full = [self._full_key(k) for k in wanted]
        try:
            blobs = await self.driver.aget_many(full)
        except Exception as exc:
            self._backend_failed(None, exc)
            return {}
        found: dict[str, Any] = {}
        for key, full_key, blob in zip(wanted, full, blobs, strict=True):
            value = self._decoded(full_key, blob)
            if value is not MISSING:
                found[key] = value
        self.hits += len(found)
        self.misses += len(wanted) - len(found)
        return found

    async def aset_many(self, items: Mapping[str, Any], ttl: TTL = DEFAULT) -> int:
        """The async twin of :meth:`Cache.set_many`: how many were stored (one driver batch)."""
        seconds = self.ttl if ttl is DEFAULT else normalize_ttl(ttl)
        blobs: dict[str, Any] = {}
        for key, value in items.items():
            full = self._full_key(key)
            blob = self._blob(full, value, seconds, None)
            if blob is not MISSING:
                blobs[full] = blob
        if not blobs:
            return 0
        try:
            await self.driver.aset_many(blobs, seconds)
        except Exception as exc:
            self._backend_failed(None, exc)
            return 0
        self.sets += len(blobs)
        return len(blobs)

    async def aclear(self, prefix: str = "") -> int:
        """The async twin of :meth:`Cache.clear`: the namespace's generation is bumped first (every process
        stops reading its entries at once), then the entries are deleted."""
        if not prefix:
            await run_blocking(self.driver, self._bump, [NAMESPACE_SCOPE])
        try:
            removed = await self.driver.aclear_many([self._full_prefix(prefix)])
        except Exception as exc:
            self._backend_failed(None, exc)
            return 0
        self.deletes += removed
        return removed

    async def ainvalidate(self, invalidation: Invalidation) -> int:
        """The async twin of :meth:`Cache.invalidate`: how many scopes were bumped."""
        return await run_blocking(self.driver, self.invalidate, invalidation)

    async def ainvalidate_resource(self, resource: str) -> int:
        """The async twin of :meth:`Cache.invalidate_resource`."""
        return await self.ainvalidate(Invalidation(resource, whole=True))

    async def aclose(self) -> None:
        """The async twin of :meth:`Cache.close`: this loop's background refreshes (awaited up to 2 s, then
        cancelled), the generation store, then the driver (its async clients too)."""
        await self._fresh.adrain(2.0)
        await run_blocking(self.driver, self._gens.close)
        await self.driver.aclose()
