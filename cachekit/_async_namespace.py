"""The async halves of the namespace's read and store paths, on the drivers' async twins.

:class:`~cachekit.Cache` keeps the rules (fail open, policies, stats); these functions are the few lines whose
driver calls are awaited instead of blocking, so that an ``async def`` hit on Redis goes through
``redis.asyncio`` and a memory hit stays inline, with no thread in between. The namespace calls them from
``Cache._aread`` and ``Cache._aload_and_store``; anything that needs a blocking call first (retrying a failed
invalidation) runs the sync path on cachekit's executor instead (:func:`cachekit._executor.run_blocking`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._executor import shared_executor
from ._types import MISSING
from .errors import CodecError

if TYPE_CHECKING:
    from .cache import Cache
    from .drivers.base import Driver

__all__ = ["REFUSED", "aread", "astore", "configure_async"]

#: What ``Cache._blob`` returns for a value it refuses to store (uncacheable, over a size limit): the entry
#: under its key is then dropped, so a read never serves the value this one was meant to replace.
REFUSED: Any = type("Refused", (), {"__repr__": lambda self: "REFUSED"})()

logger = logging.getLogger("cachekit")


def configure_async(driver: Driver, options: Mapping[str, Any]) -> None:
    """Apply ``config={"async_workers": N}``: the driver's blocking async twins run on a pool of N threads."""
    workers = options.get("async_workers")
    if workers is not None:
        driver.use_executor(shared_executor(workers))


async def aread(ns: Cache, key: str) -> Any:
    """The cached value or MISSING, through ``await driver.aget``; never raises for a driver or codec failure."""
    try:
        raw: Any = await ns.driver.aget(key)
    except Exception as exc:
        ns._backend_failed(key, exc)
        return MISSING
    if raw is MISSING:
        ns.misses += 1
        return MISSING
    decode = ns._decode
    if decode is not None:
        try:
            at = ns._decode_at  # keyed: a signing codec binds each entry to its key
            raw = decode(raw) if at is None else at(key, raw)
        except CodecError as exc:
            ns._backend_failed(key, exc)
            await _adrop(ns.driver, key)
            return MISSING
        if raw is MISSING:  # expired by its envelope
            ns.misses += 1
            return MISSING
    ns.hits += 1
    return raw


async def astore(ns: Cache, key: str, value: Any, ttl: float | None, max_payload: int | None) -> bool:
    """Encode ``value`` as the namespace does and store it with ``await driver.aset``; whether it was stored."""
    blob = ns._blob(key, value, ttl, max_payload)
    if blob is MISSING:
        return False
    if blob is REFUSED:
        await _adrop(ns.driver, key)
        return False
    try:
        await ns.driver.aset(key, blob, ttl)
    except Exception as exc:
        ns._backend_failed(key, exc)
        return False
    ns.sets += 1
    return True


async def _adrop(driver: Driver, key: str) -> None:
    try:
        await driver.adelete(key)
    except Exception as exc:
        logger.debug("cachekit: could not drop corrupt entry %r: %s", key, exc)
