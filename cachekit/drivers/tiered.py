"""The multi-tier driver: ordered drivers (L1 memory -> L2 Redis -> L3 S3...) behind one driver interface.

Each :class:`Tier` is a driver with an optional ``ttl`` that bounds how long that tier keeps an entry: a tier
stores an entry for ``min(requested ttl, tier ttl)`` (``None`` on either side means no bound from that side).

Reads go through the tiers in order. A hit in a slower tier is copied into the faster ones (with
``promote_on_hit``, the default) synchronously, before the read returns, with the entry's *remaining* TTL:
``expires_at - clock()`` from the slower tier's :meth:`~cachekit.drivers.base.Driver.get_with_expiry`, never a
fresh full TTL. When the slower tier cannot tell the deadline, the bound is that tier's ``ttl`` (the longest
the entry can have left there), and always the faster tier's own ``ttl``.

Strategies, i.e. what :meth:`TieredDriver.set` writes:

* ``"write-through"`` (default): every tier. Each tier holds what was last written, so evicting an entry
  from L1 costs one L2 read, not a call to the resource.
* ``"lazy-promotion"``: the first tier only. Slower tiers are filled by someone else - other processes
  writing through to a shared Redis or S3, or a warmer - and this driver copies their entries up when it
  finds them (with ``promote_on_hit``). Use it when the local tier must stay cheap to write and the shared
  tiers are populated elsewhere; alone, a lazy-promotion driver never writes its slower tiers.

Failures are per tier and fail open: a tier that raises is skipped and counted in its ``errors``; ``get``
goes on to the next tier, ``set`` to the other tiers. Each tier has a circuit breaker (the driver's own for
Redis and S3): after a timeout or repeated failures the tier is skipped without being called (``skipped``)
for a cool-down, then one probe call decides. Only when every tier involved fails does an operation raise
:class:`~cachekit.errors.DriverError`, so the :class:`~cachekit.Cache` above counts it.

Invalidations (``delete``, ``delete_many``, ``clear``, ``clear_many``) are applied to every tier. A tier that
misses one is *quarantined*: it is neither read nor written until the missed invalidations (queued, bounded)
have been replayed on it, so it can never serve an entry the write made stale; the tiers that applied the
invalidation keep serving. The invalidation raises :class:`~cachekit.errors.DriverError` only when no tier
applied it. See :mod:`cachekit.drivers._tier`.

Tiers exchange blobs, so a driver that stores live objects (``stores_objects``) cannot be a tier. Tiers
should share one clock (the :class:`~cachekit.Cache` passes its clock to every tier it builds), since
remaining TTLs are computed from one tier's deadline and this driver's clock.

This module is the home of :class:`TieredDriver`, the operations over the tiers. :class:`Tier`, the
strategies and the checks of the given tiers live in :mod:`cachekit.drivers._tier_config` (both names are
importable from here as well), one running tier in :mod:`cachekit.drivers._tier`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from cachekit._options import reject_unknown_options
from cachekit._types import MISSING, Missing, normalize_ttl
from cachekit.drivers._tier import Outcome, TierGuard, TierState, in_service, raise_if_all_failed
from cachekit.drivers._tier_config import STRATEGIES, Tier, bounded_ttl, build_tiers, check_strategy
from cachekit.drivers.base import HOST, NETWORK, PROCESS, Driver, ReadCounter, Reader
from cachekit.drivers.memory import MemoryDriver, tier_reader
from cachekit.errors import ConfigurationError, DriverError
from cachekit.generations import GenerationStore, store_for

__all__ = ["STRATEGIES", "Tier", "TieredDriver"]


class TieredDriver(Driver):
    """Several drivers as one, fastest first: reads fall through, hits are promoted, failures are skipped.

    :param tiers: :class:`Tier` objects or bare drivers (a bare driver is a tier without a ``ttl`` bound).
    :param promote_on_hit: copy a hit in a slower tier into the faster ones, with its remaining TTL.
    :param strategy: ``"write-through"`` (``set`` writes every tier) or ``"lazy-promotion"`` (``set`` writes
        the first tier; slower tiers are only read). See the module docstring.
    :param clock: wall clock used for remaining TTLs, epoch seconds (default :func:`time.time`).

    E.g.::

        driver = TieredDriver(
            [Tier(MemoryDriver(max_size=10_000), ttl=60), Tier(RedisDriver(url="redis://127.0.0.1"), ttl=3600)],
            promote_on_hit=True,
            strategy="write-through",
        )
        driver.set("k", b"v", ttl=300)   # memory keeps it 60 s, Redis 300 s
        driver.get("k")                  # from memory; after 60 s from Redis, copied back for what is left
        driver.stats()["tiers"][0]["hits"]

        Cache(drivers=[{"driver": "memory", "ttl": 60}, {"driver": "redis", "ttl": 3600, "config": {...}}])
    """

    name = "tiered"

    def __init__(
        self,
        tiers: Sequence[Tier | Driver] | None = None,
        *,
        promote_on_hit: bool = True,
        strategy: str = "write-through",
        clock: Callable[[], float] | None = None,
        **unknown: Any,
    ) -> None:
        reject_unknown_options("tiered driver", unknown, ("tiers", "promote_on_hit", "strategy", "clock"))
        self._tiers = build_tiers(tiers)
        if not isinstance(promote_on_hit, bool):
            raise ConfigurationError(f"promote_on_hit must be True or False; got {promote_on_hit!r}")
        self.promote_on_hit = promote_on_hit
        self.strategy = check_strategy(strategy)
        if clock is not None and not callable(clock):
            raise ConfigurationError(f"clock must be a callable returning epoch seconds; got {clock!r}")
        self._clock: Callable[[], float] = clock or time.time
        self._misses = 0

    # A class attribute on other drivers; here it depends on the tiers, hence the property.
    @property
    def supports_locks(self) -> bool:  # type: ignore[override]
        """True when some tier has cross-process locks (the first such tier provides them)."""
        return any(tier.driver.supports_locks for tier in self._tiers)

    def acquire_lock(self, name: str, ttl: float) -> str | None:
        return self._lock_tier().acquire_lock(name, ttl)

    def release_lock(self, name: str, token: str) -> None:
        self._lock_tier().release_lock(name, token)

    def _lock_tier(self) -> Driver:
        for tier in self._tiers:
            if tier.driver.supports_locks:
                return tier.driver
        raise NotImplementedError("no tier has cross-process locks")

    @property
    def blocking(self) -> bool:  # type: ignore[override]
        """True when any tier may block on I/O."""
        return any(tier.driver.blocking for tier in self._tiers)

    @property
    def sharing(self) -> str | None:  # type: ignore[override]
        """The widest sharing of the tiers (a shared tier makes the whole driver shared)."""
        return self._widest_tier().sharing

    def generation_store(self) -> GenerationStore:
        """The store of the most widely shared tier (the first of those on a tie: the faster one)."""
        return store_for(self._widest_tier())

    def _widest_tier(self) -> Driver:
        ranks = {PROCESS: 0, HOST: 1, NETWORK: 2}  # undeclared: 3, so that it decides (a store of its own, or refused)
        return max((tier.driver for tier in self._tiers), key=lambda driver: ranks.get(driver.sharing or "", 3))

    @property
    def tiers(self) -> tuple[Tier, ...]:
        """The tiers, fastest first, with their effective ``ttl`` and ``name``."""
        return tuple(Tier(tier.driver, tier.ttl, tier.name) for tier in self._tiers)

    # -- reads ---------------------------------------------------------------------------------------------

    def reader(
        self,
        counts: ReadCounter,
        failed: Callable[[str, Exception], None],
        decode: Callable[[Any], Any] | None = None,
        *,
        decode_at: Callable[[str, Any], Any] | None = None,
        get: Callable[[str], Any] | None = None,
        trusted: bool = False,
        deadline_of: Callable[[Any], float | None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Reader:
        """The generic body over :meth:`get` (whose L1 fast path serves a healthy first tier's hits without the
        tier walk); over a plain memory first tier and an unsigned codec, its hits are answered from the value
        decoded at the entry's second hit (:func:`~cachekit.drivers.memory.tier_decoder`)."""
        decoded = self.blob_decoder(decode, decode_at=decode_at, deadline_of=deadline_of, clock=clock)
        read = super().reader(counts, failed, decode, decode_at=decoded, get=get)
        first = self._tiers[0]
        if get is not None or type(self).get is not TieredDriver.get or not isinstance(first.driver, MemoryDriver):
            return read
        return tier_reader(first.driver, first, read, counts, decode, decode_at, deadline_of, clock or self._clock)

    def blob_decoder(
        self,
        decode: Callable[[Any], Any] | None,
        *,
        decode_at: Callable[[str, Any], Any] | None = None,
        trusted: bool = False,
        deadline_of: Callable[[Any], float | None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Callable[[str, Any], Any] | None:
        """The decoding of :meth:`reader`, for the cache's other reads (``aget``, ``get_many``, the re-check):
        the first tier's (:meth:`Driver.blob_decoder`; over a plain memory first tier and an unsigned codec,
        :func:`~cachekit.drivers.memory.tier_decoder`), so a hit of that tier is a copy of the value kept in its
        entry whichever path reads it. Never ``trusted`` for the tier: its entries' envelopes are checked."""
        first = self._tiers[0].driver
        return first.blob_decoder(decode, decode_at=decode_at, deadline_of=deadline_of, clock=clock or self._clock)

    def get(self, key: str) -> bytes | Missing:
        # The L1 hit is the hot path: straight to the first tier while it is healthy (nothing to replay, breaker
        # closed). A failure, or anything unusual, takes the full path, which counts it and moves on.
        first = self._tiers[0]
        start = 0
        if first.idle():
            try:
                blob = first.driver.get(key)
            except Exception:
                blob = None
            if blob is not None:
                if not isinstance(blob, Missing):
                    first.hits += 1
                    return blob
                first.misses += 1
                start = 1
        found = self.get_with_expiry(key, start=start)
        return found if isinstance(found, Missing) else found[0]

    async def aget(self, key: str) -> bytes | Missing:
        """A hit of a first tier that never blocks (memory) is answered inline, with no thread; anything else
        (a miss there, a first tier that blocks or is not healthy) takes the sync path on cachekit's executor."""
        first = self._tiers[0]
        if not first.driver.blocking and first.idle():
            try:
                blob = first.driver.get(key)
            except Exception:
                blob = MISSING
            if not isinstance(blob, Missing):
                first.hits += 1
                return blob
        return await super().aget(key)

    def get_with_expiry(self, key: str, *, start: int = 0) -> tuple[bytes, float | None] | Missing:
        """The first tier's hit, promoted into the faster tiers; ``MISSING`` when no tier has ``key``.

        ``start`` skips the tiers already asked (the fast path of :meth:`get`).
        """
        outcome = Outcome()
        for index, tier in enumerate(self._tiers):
            if index < start:
                continue
            if not in_service(tier, outcome):
                continue
            with TierGuard(tier, outcome):
                found = tier.call(lambda driver: driver.get_with_expiry(key))
                if isinstance(found, Missing):
                    tier.misses += 1
                    continue
                tier.hits += 1
                if index and self.promote_on_hit:
                    self._promote(key, found[0], found[1], index)
                return found
        raise_if_all_failed("get", key, outcome, self._tiers)
        self._misses += 1
        return MISSING

    def get_many(self, keys: Sequence[str]) -> list[bytes | Missing]:
        """One batch call per tier for the keys still missing; promotion needs each hit's deadline."""
        results: list[bytes | Missing] = [MISSING] * len(keys)
        pending = list(range(len(keys)))
        outcome = Outcome()
        for index, tier in enumerate(self._tiers):
            if not pending:
                break
            if not in_service(tier, outcome):
                continue
            with TierGuard(tier, outcome):
                if index and self.promote_on_hit:
                    pending = self._get_and_promote(tier, index, keys, pending, results)
                else:
                    wanted = [keys[i] for i in pending]
                    blobs = tier.call(lambda driver: driver.get_many(wanted))  # noqa: B023 - called at once
                    still = [i for i, blob in zip(pending, blobs, strict=True) if isinstance(blob, Missing)]
                    tier.hits += len(pending) - len(still)
                    for i, blob in zip(pending, blobs, strict=True):
                        results[i] = blob
                    pending = still
                tier.misses += len(pending)
        if pending:
            raise_if_all_failed("get_many", None, outcome, self._tiers)
            self._misses += len(pending)
        return results

    def keys(self, prefix: str = "") -> list[str]:
        """The union of every tier's keys under ``prefix``, sorted."""
        found: set[str] = set()
        outcome = Outcome()
        for tier in self._tiers:
            if not in_service(tier, outcome):
                continue
            with TierGuard(tier, outcome):
                found.update(tier.call(lambda driver: driver.keys(prefix)))
        raise_if_all_failed("keys", prefix, outcome, self._tiers)
        return sorted(found)

    def size(self) -> int:
        """Distinct keys across the tiers (an entry held by two tiers counts once)."""
        return len(self.keys())

    # -- writes --------------------------------------------------------------------------------------------

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        seconds = normalize_ttl(ttl)
        outcome = Outcome()
        targets = self._write_targets()
        for tier in targets:
            if not in_service(tier, outcome):
                continue
            bound = bounded_ttl(seconds, tier.ttl)
            with TierGuard(tier, outcome):
                tier.call(lambda driver: driver.set(key, blob, bound))  # noqa: B023 - called at once
                tier.sets += 1
        raise_if_all_failed("set", key, outcome, targets)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        seconds = normalize_ttl(ttl)
        outcome = Outcome()
        targets = self._write_targets()
        for tier in targets:
            if not in_service(tier, outcome):
                continue
            bound = bounded_ttl(seconds, tier.ttl)
            with TierGuard(tier, outcome):
                tier.call(lambda driver: driver.set_many(items, bound))  # noqa: B023 - called at once
                tier.sets += len(items)
        raise_if_all_failed("set_many", None, outcome, targets)

    # -- conditional writes: decided by the most shared tier written to, then mirrored in the others ----------

    def add(self, key: str, blob: bytes, ttl: float | None = None) -> bool:
        """Add on the last tier written to (atomic there: ``SET NX`` on Redis); then copy the new entry into
        the faster tiers, or, when the key was taken, drop their copies so they read the winner's value."""
        seconds = normalize_ttl(ttl)
        authority = self._write_targets()[-1]
        added = authority.call(lambda driver: driver.add(key, blob, bounded_ttl(seconds, authority.ttl)))
        self._mirror(authority, key, blob if added else None, seconds)
        return added

    def replace(self, key: str, expected: bytes, blob: bytes, ttl: float | None = None) -> bool:
        """Compare-and-set on the last tier written to, mirrored in the others as :meth:`add` does."""
        seconds = normalize_ttl(ttl)
        authority = self._write_targets()[-1]
        bound = bounded_ttl(seconds, authority.ttl)
        done = authority.call(lambda driver: driver.replace(key, expected, blob, bound))
        self._mirror(authority, key, blob if done and seconds != 0 else None, seconds)
        return done

    def _mirror(self, authority: TierState, key: str, blob: bytes | None, seconds: float | None) -> None:
        targets = self._write_targets()
        for tier in self._tiers:
            if tier is authority:
                continue
            try:
                if blob is not None and tier in targets:
                    bound = bounded_ttl(seconds, tier.ttl)
                    tier.call(lambda driver: driver.set(key, blob, bound))  # noqa: B023 - called at once
                else:
                    tier.call(lambda driver: driver.delete(key))
            except ConfigurationError:
                raise
            except Exception as exc:
                tier.note_failure(exc)
                tier.queue(keys=[key], cause=exc)

    # -- invalidations: every tier; a tier that misses one is quarantined until it is replayed ---------------

    def delete(self, key: str) -> bool:
        return bool(self._invalidate("delete", key, lambda driver: int(driver.delete(key)), keys=[key]))

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete from every tier; return the largest per-tier count (tiers overlap, so counts do not add)."""
        keys = list(keys)
        return self._invalidate("delete_many", None, lambda driver: driver.delete_many(keys), keys=keys)

    def clear(self, prefix: str = "") -> int:
        """Clear every tier; return the largest per-tier count (tiers overlap, so counts do not add)."""
        return self._invalidate("clear", prefix, lambda driver: driver.clear(prefix), prefixes=[prefix])

    def clear_many(self, prefixes: Iterable[str]) -> int:
        prefixes = [prefix for prefix in prefixes if prefix]
        return self._invalidate("clear_many", None, lambda driver: driver.clear_many(prefixes), prefixes=prefixes)

    # -- the rest ------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Per-tier counters and each tier driver's own stats, plus totals over the tiers."""
        tiers = [tier.report() for tier in self._tiers]
        hits = sum(tier.hits for tier in self._tiers)
        lookups = hits + self._misses
        return {
            "driver": self.name,
            "strategy": self.strategy,
            "promote_on_hit": self.promote_on_hit,
            "tiers": tiers,
            "totals": {
                "hits": hits,
                "misses": self._misses,
                "errors": sum(tier.errors for tier in self._tiers),
                "skipped": sum(tier.skipped for tier in self._tiers),
                "sets": sum(tier.sets for tier in self._tiers),
                "promotions": sum(tier.promotions for tier in self._tiers),
                "hit_rate": hits / lookups if lookups else 0.0,
            },
        }

    def close(self) -> None:
        """Close every tier, even when one fails; then raise :class:`DriverError` naming the failures."""
        outcome = Outcome()
        for tier in self._tiers:
            with TierGuard(tier, outcome):
                tier.driver.close()
        if outcome.failed:
            raise DriverError(f"closing tier(s) {outcome.failed} failed (the others were closed)") from outcome.last

    def __repr__(self) -> str:
        names = ", ".join(tier.name for tier in self._tiers)
        return f"<TieredDriver [{names}] strategy={self.strategy!r}>"

    # -- helpers -------------------------------------------------------------------------------------------

    def _write_targets(self) -> list[TierState]:
        return self._tiers if self.strategy == "write-through" else self._tiers[:1]

    def _promote(self, key: str, blob: bytes, expires_at: float | None, found_in: int) -> None:
        """Copy a hit into the tiers before ``found_in``; a failed copy is counted, never raised."""
        remaining: float | None
        if expires_at is None:
            remaining = self._tiers[found_in].ttl
        else:
            remaining = expires_at - self._clock()
            if remaining <= 0:
                return
        for tier in self._tiers[:found_in]:
            if not tier.usable():
                tier.skipped += 1
                continue
            bound = bounded_ttl(remaining, tier.ttl)
            try:
                tier.call(lambda driver: driver.set(key, blob, bound))  # noqa: B023 - called at once
            except ConfigurationError:
                raise
            except Exception as exc:
                tier.note_failure(exc)
            else:
                tier.promotions += 1

    def _get_and_promote(
        self,
        tier: TierState,
        index: int,
        keys: Sequence[str],
        pending: list[int],
        results: list[bytes | Missing],
    ) -> list[int]:
        still = []
        for position in pending:
            key = keys[position]
            found = tier.call(lambda driver: driver.get_with_expiry(key))  # noqa: B023 - called at once
            if isinstance(found, Missing):
                still.append(position)
                continue
            tier.hits += 1
            results[position] = found[0]
            self._promote(key, found[0], found[1], index)
        return still

    def _invalidate(
        self,
        operation: str,
        subject: str | None,
        call: Callable[[Driver], int],
        *,
        prefixes: Sequence[str] = (),
        keys: Sequence[str] = (),
    ) -> int:
        """Apply an invalidation to every tier in service; queue it for the others (they stay quarantined)."""
        outcome = Outcome()
        counts = [0]
        for tier in self._tiers:
            if not tier.usable():
                tier.queue(prefixes=prefixes, keys=keys, cause=None)
                outcome.failed.append(tier.name)
                continue
            failures = len(outcome.failed)
            with TierGuard(tier, outcome):
                counts.append(tier.call(call))
            if len(outcome.failed) > failures:
                tier.queue(prefixes=prefixes, keys=keys, cause=outcome.last)
        if len(outcome.failed) == len(self._tiers):
            what = f" of {subject!r}" if subject else ""
            raise DriverError(
                f"tiered {operation}{what} failed on every tier ({', '.join(outcome.failed)}); it is queued on "
                "each and replayed before the tier serves again: retry the invalidation"
            ) from outcome.last
        return max(counts)
