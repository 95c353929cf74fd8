"""Health of a cache's backend: one probe read per tier, timed (:meth:`cachekit.Cache.ping`, ``cachekit ping``).

A probe is a plain ``get`` of a key nobody writes (``~ping``), through the driver as the cache's reads go (its
circuit breaker included: a tier whose breaker is open answers at once that it is skipped); the latency is the
better of two probes, since the first may include connecting. A multi-tier driver is probed tier by tier, so a
dead L2 shows next to a healthy L1.

E.g.::

    health = Cache(driver="redis", config={"url": "redis://127.0.0.1:6379/0"}).ping()
    health.ok                        # True when every tier answered
    health.tiers[0].latency          # seconds
    health.as_dict()                 # {"ok": True, "tiers": [{"name": "redis", "ok": True, ...}]}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._logging import log_once_per_interval
from ._redact import redact
from .drivers.base import PROCESS, Driver

__all__ = ["PROBE_KEY", "Health", "TierHealth", "ping_driver", "warn_if_unreachable"]

#: The key a probe reads (never written): a miss is a healthy answer.
PROBE_KEY = "~ping"


@dataclass(frozen=True)
class TierHealth:
    """One tier's answer to a probe: ``latency`` in seconds, ``error`` (redacted) when it failed."""

    name: str
    driver: str
    ok: bool
    latency: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: latency in milliseconds."""
        return {"name": self.name, "driver": self.driver, "ok": self.ok,
                "latency_ms": round(self.latency * 1000, 3), "error": self.error}


@dataclass(frozen=True)
class Health:
    """Every tier's answer, fastest tier first (a single-driver cache has one)."""

    tiers: tuple[TierHealth, ...]

    @property
    def ok(self) -> bool:
        """True when every tier answered."""
        return all(tier.ok for tier in self.tiers)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"ok": ..., "tiers": [...]}``."""
        return {"ok": self.ok, "tiers": [tier.as_dict() for tier in self.tiers]}


def ping_driver(driver: Driver, clock: Callable[[], float] = time.perf_counter) -> Health:
    """Probe ``driver`` (each tier of a multi-tier driver) once; never raises for a failing backend."""
    tiers = getattr(driver, "tiers", None)
    named = [(tier.name or tier.driver.name, tier.driver) for tier in tiers] if tiers else [(driver.name, driver)]
    return Health(tuple(_probe(name, each, clock) for name, each in named))


def warn_if_unreachable(driver: Driver, namespace: str) -> bool:
    """At a :class:`~cachekit.Cache`'s construction: probe each tier outside this process once, and log one
    WARNING (rate-limited per backend) for one that does not answer, naming its address (credentials redacted)
    and what to check. Never raises; returns whether every tier answered.

    In-process tiers (memory) always answer and are not probed. A dead backend that refuses connections costs
    nothing noticeable; one that drops them costs its driver's connect timeout, once (its breaker then opens, so
    the first reads fail fast instead of each waiting).
    """
    tiers = getattr(driver, "tiers", None)
    drivers = [tier.driver for tier in tiers] if tiers else [driver]
    answered = True
    for each in drivers:
        if each.sharing == PROCESS:
            continue
        try:
            each.get(PROBE_KEY)
        except Exception as exc:
            answered = False
            breaker = getattr(each, "breaker", None)
            where = redact(str(getattr(breaker, "name", "") or repr(each)))
            log_once_per_interval(
                logging.WARNING, ("unreachable", where),
                "cachekit: Cache(namespace=%r) is built against %s, which does not answer (%s). Check that the "
                "server runs and is reachable at that address (host, port, firewall), and the URL, credentials and "
                "TLS settings in its config. The cache works meanwhile: its reads go to the source (fail open) "
                "until the backend answers",
                namespace, where, redact(f"{type(exc).__name__}: {exc}")[:300],
            )
    return answered


def _probe(name: str, driver: Driver, clock: Callable[[], float]) -> TierHealth:
    """The better of two timed reads: the first may include connecting, which is not the backend's latency."""
    best = float("inf")
    for _ in range(2):
        started = clock()
        try:
            driver.get(PROBE_KEY)
        except Exception as exc:
            return TierHealth(name, driver.name, False, clock() - started, redact(f"{type(exc).__name__}: {exc}"))
        best = min(best, clock() - started)
    return TierHealth(name, driver.name, True, best)
