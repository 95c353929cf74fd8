"""One tier of a :class:`~cachekit.drivers.tiered.TieredDriver` as it runs: counters, circuit breaker, and the
invalidations it missed.

A tier that fails is skipped, never the others: its circuit breaker (the driver's own when it has one, e.g.
Redis and S3, else one kept here) makes later calls fail fast for a cool-down. A tier that misses an
*invalidation* (``delete``/``clear``) is worse than slow: it may hold entries the write made stale. Such a tier
is **quarantined**: it is neither read nor written, and the missed invalidations are queued (a set, collapsed
to one common prefix past :data:`MAX_PENDING`), until a replay of the queue succeeds. The other tiers, which
did apply the invalidation, keep serving meanwhile.

The home also of what one operation of the tiered driver keeps over its tiers: :class:`Outcome` (which tiers
failed), :class:`TierGuard` (fail open on one tier), :func:`in_service` and :func:`raise_if_all_failed`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

from cachekit._logging import log_once_per_interval
from cachekit._redact import redact
from cachekit.breaker import CircuitBreaker, Verdict
from cachekit.drivers.base import Driver
from cachekit.errors import CircuitOpenError, ConfigurationError, CorruptEntryError, DriverError, DriverUnavailable

__all__ = ["MAX_PENDING", "Outcome", "TierGuard", "TierState", "in_service", "raise_if_all_failed"]

#: Queued invalidations per tier before they collapse into one prefix (bounded work and memory in an outage).
MAX_PENDING: Final = 1000

_T = TypeVar("_T")


def _verdict(exc: BaseException) -> Verdict:
    """A tier driver without a breaker of its own: unreachable trips at once, other failures count."""
    if isinstance(exc, (ConfigurationError, CorruptEntryError)):
        return "ok"  # a bad key or option, or bad bytes under one key (issue 19): not the tier failing
    return "trip" if isinstance(exc, DriverUnavailable) else "failure"


class TierState:
    """A tier: its driver, ``ttl`` bound, name, counters, breaker and queue of missed invalidations."""

    def __init__(self, driver: Driver, ttl: float | None, name: str, breaker: CircuitBreaker | None = None) -> None:
        self.driver = driver
        self.ttl = ttl
        self.name = name
        own = getattr(driver, "breaker", None)
        # A driver with a breaker of its own (Redis, S3) already guards every call; others get one here.
        self._wraps = not isinstance(own, CircuitBreaker) or breaker is not None
        self.breaker: CircuitBreaker = breaker or (own if isinstance(own, CircuitBreaker) else CircuitBreaker(
            f"cache tier {name} ({type(driver).__name__})"
        ))
        self.hits = self.misses = self.errors = self.sets = self.promotions = self.skipped = 0
        self._pending_prefixes: set[str] = set()
        self._pending_keys: set[str] = set()
        self._collapsed: str | None = None
        self._pending_lock = threading.Lock()
        self._replaying = False

    # -- calls -----------------------------------------------------------------------------------------------

    def call(self, operation: Callable[[Driver], _T]) -> _T:
        """Run ``operation(driver)`` through the tier's breaker (raises CircuitOpenError while it is open)."""
        if not self._wraps:
            return operation(self.driver)
        breaker = self.breaker
        probe = breaker.enter()  # enter/exit rather than guard(): this is every L1 hit's path
        try:
            result = operation(self.driver)
        except BaseException as exc:
            breaker.exit(probe, exc, _verdict(exc) if isinstance(exc, Exception) else "ok")
            raise
        breaker.exit(probe)
        return result

    def idle(self) -> bool:
        """True when nothing is queued for the tier and its breaker is closed: calls may go straight through."""
        return not self._pending_prefixes and not self._pending_keys and self.breaker.closed

    def usable(self) -> bool:
        """True when the tier may be read and written now: no missed invalidation is left to replay.

        With a queue, one caller replays it (when the breaker lets a call through); the others see the tier
        as unusable until the replay succeeded.
        """
        if not (self._pending_prefixes or self._pending_keys):
            return True
        if not self.breaker.allows_calls():
            return False
        with self._pending_lock:
            if self._replaying:
                return False
            self._replaying = True
            prefixes, keys = set(self._pending_prefixes), set(self._pending_keys)
        try:
            self.call(lambda driver: _replay(driver, prefixes, keys))
        except ConfigurationError:
            raise
        except Exception as exc:
            self.note_failure(exc)
            return False
        finally:
            with self._pending_lock:
                self._replaying = False
        with self._pending_lock:
            self._pending_prefixes -= prefixes
            self._pending_keys -= keys
            left = len(self._pending_prefixes) + len(self._pending_keys)
            if self._collapsed in prefixes:
                self._collapsed = None
        log_once_per_interval(
            logging.INFO, ("tier", self.name, "replayed"),
            "cachekit: cache tier %s is back: %d missed invalidation(s) replayed, it serves again",
            self.name, len(prefixes) + len(keys),
        )
        return left == 0

    def queue(self, *, prefixes: Iterable[str] = (), keys: Iterable[str] = (), cause: BaseException | None) -> None:
        """Remember invalidations this tier missed; it is quarantined until they are replayed."""
        with self._pending_lock:
            covered = self._collapsed
            if covered is None:
                self._pending_prefixes.update(prefixes)
                self._pending_keys.update(keys)
            else:  # what the collapsed prefix covers is already queued
                self._pending_prefixes.update(p for p in prefixes if not p.startswith(covered))
                self._pending_keys.update(k for k in keys if not k.startswith(covered))
            if len(self._pending_prefixes) + len(self._pending_keys) > MAX_PENDING:
                self._collapse()
        log_once_per_interval(
            logging.WARNING, ("tier", self.name, "quarantined"),
            "cachekit: cache tier %s missed an invalidation (%s); it is skipped until the invalidation is "
            "replayed, the other tiers keep serving", self.name, cause or "its circuit breaker is open",
        )

    def note_failure(self, exc: BaseException) -> None:
        """Count a failed call: a breaker that failed fast is a skip, anything else an error (logged)."""
        if isinstance(exc, CircuitOpenError):
            self.skipped += 1
            return
        self.errors += 1
        log_once_per_interval(
            logging.WARNING, ("tier", self.name, type(exc).__name__),
            "cachekit: cache tier %s failed (%s: %s); it is skipped, the other tiers keep serving",
            self.name, type(exc).__name__, exc,
        )

    @property
    def pending(self) -> int:
        """How many invalidations wait to be replayed (0: the tier is in service)."""
        return len(self._pending_prefixes) + len(self._pending_keys)

    def as_dict(self) -> dict[str, Any]:
        lookups = self.hits + self.misses
        return {
            "name": self.name,
            "ttl": self.ttl,
            "hits": self.hits,
            "misses": self.misses,
            "errors": self.errors,
            "skipped": self.skipped,
            "sets": self.sets,
            "promotions": self.promotions,
            "hit_rate": self.hits / lookups if lookups else 0.0,
            "breaker": self.breaker.stats(),
            "pending_invalidations": self.pending,
            "in_service": self.pending == 0 and self.breaker.state == "closed",
        }

    def report(self) -> dict[str, Any]:
        """:meth:`as_dict` plus the tier driver's own ``stats()``; a tier that is down still gets its counters
        reported (and the failed ``stats()`` call counted as an error)."""
        entry = self.as_dict()
        try:
            entry["driver_stats"] = self.driver.stats()
        except Exception as exc:
            self.errors += 1
            entry["errors"] = self.errors
            entry["driver_stats"] = {"error": redact(f"{type(exc).__name__}: {exc}")}
        return entry

    def _collapse(self) -> None:
        """Replace the queue by the longest prefix (ending at a ``/``) that covers all of it ('' = everything)."""
        everything = sorted(self._pending_prefixes | self._pending_keys)
        common = os.path.commonprefix(everything)  # noqa: RUF071 - keys are strings, not paths
        self._collapsed = common[: common.rfind("/") + 1]
        self._pending_prefixes = {self._collapsed}
        self._pending_keys = set()


def _replay(driver: Driver, prefixes: set[str], keys: set[str]) -> None:
    if "" in prefixes:
        driver.clear("")
    elif prefixes:
        driver.clear_many(sorted(prefixes))
    if keys:
        driver.delete_many(sorted(keys))


class Outcome:
    """Which tiers failed during one operation, and the last failure (for ``__cause__``)."""

    __slots__ = ("failed", "last")

    def __init__(self) -> None:
        self.failed: list[str] = []
        self.last: BaseException | None = None


class TierGuard:
    """Fail open on one tier: count and record its failure, let the caller go on with the next tier.

    :class:`ConfigurationError` (a bad key or option) is a programming error, not a tier failure; a
    :class:`CorruptEntryError` (an entry refused before it was read, issue 19) is one bad entry, not a failing
    tier: both go to the caller (a corrupt entry is counted there and the read served from the source).
    """

    __slots__ = ("outcome", "tier")

    def __init__(self, tier: TierState, outcome: Outcome) -> None:
        self.tier, self.outcome = tier, outcome

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, (ConfigurationError, CorruptEntryError)):
            return False
        self.tier.note_failure(exc)
        self.outcome.failed.append(self.tier.name)
        self.outcome.last = exc
        return True


def in_service(tier: TierState, outcome: Outcome) -> bool:
    """False (the tier counted as skipped) while the tier waits for missed invalidations to be replayed."""
    if tier.usable():
        return True
    tier.skipped += 1
    outcome.failed.append(tier.name)
    return False


def raise_if_all_failed(operation: str, subject: str | None, outcome: Outcome, involved: Sequence[TierState]) -> None:
    """Raise :class:`DriverError` when every tier ``involved`` in ``operation`` failed (the last failure as cause)."""
    if involved and len(outcome.failed) == len(involved):
        what = f" of {subject!r}" if subject else ""
        raise DriverError(
            f"tiered {operation}{what} failed on every tier ({', '.join(outcome.failed)})"
        ) from outcome.last
