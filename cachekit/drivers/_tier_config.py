"""How a :class:`~cachekit.drivers.tiered.TieredDriver` is configured: its :class:`Tier` objects and strategies.

The home of what a caller gives the tiered driver and of its checks: :class:`Tier` (a driver, the longest
``ttl`` it keeps entries, a name, a breaker), :data:`STRATEGIES`, :func:`build_tiers` (which turns the given
tiers into running :class:`~cachekit.drivers._tier.TierState` objects, rejecting what cannot be a tier) and
:func:`bounded_ttl`, the TTL a tier stores an entry for. :class:`Tier` and :data:`STRATEGIES` are importable
from :mod:`cachekit.drivers.tiered` as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cachekit._types import normalize_ttl
from cachekit.breaker import CircuitBreaker
from cachekit.drivers._tier import TierState
from cachekit.drivers.base import Driver
from cachekit.errors import ConfigurationError

__all__ = ["STRATEGIES", "Tier", "bounded_ttl", "build_tiers", "check_strategy"]

#: The accepted values of ``strategy``.
STRATEGIES = ("write-through", "lazy-promotion")


@dataclass(frozen=True)
class Tier:
    """One level of a :class:`TieredDriver`: a driver, the longest ``ttl`` it keeps entries, and a name.

    ``ttl`` is seconds or a :class:`~datetime.timedelta` (``None``: no bound); ``name`` defaults to
    ``"L{n}-{driver.name}"`` (``"L1-memory"``, ``"L2-redis"``). ``breaker`` replaces the tier's circuit
    breaker (default: the driver's own ``breaker``, else one with the default options).

    E.g.::

        Tier(MemoryDriver(max_size=10_000), ttl=60, name="L1-memory")
    """

    driver: Driver
    ttl: float | None = None
    name: str | None = None
    breaker: CircuitBreaker | None = None


def bounded_ttl(ttl: float | None, limit: float | None) -> float | None:
    """``min(ttl, limit)`` where ``None`` means unbounded."""
    if ttl is None:
        return limit
    return ttl if limit is None else min(ttl, limit)


def check_strategy(strategy: object) -> str:
    normalized = strategy.strip().lower() if isinstance(strategy, str) else strategy
    if normalized not in STRATEGIES:
        raise ConfigurationError(f"strategy must be one of {list(STRATEGIES)}; got {strategy!r}")
    return str(normalized)


def build_tiers(tiers: object) -> list[TierState]:
    if tiers is None or isinstance(tiers, (str, bytes, Mapping)) or not isinstance(tiers, Sequence):
        raise ConfigurationError(
            "the tiered driver needs a list of tiers, fastest first: "
            f"TieredDriver([Tier(MemoryDriver(), ttl=60), Tier(FilesystemDriver(directory=...))]); got {tiers!r}"
        )
    if not tiers:
        raise ConfigurationError("the tiered driver needs at least one tier; got an empty list")
    built = []
    for index, given in enumerate(tiers):
        tier = Tier(given) if isinstance(given, Driver) else given
        if not isinstance(tier, Tier) or not isinstance(tier.driver, Driver):
            raise ConfigurationError(f"tiers[{index}] must be a Tier or a Driver; got {tier!r}")
        if tier.driver.stores_objects:
            raise ConfigurationError(
                f"tiers[{index}] ({tier.driver!r}) stores live objects, but tiers exchange blobs: "
                "configure it to store bytes (e.g. MemoryDriver without store='objects')"
            )
        if tier.name is not None and (not isinstance(tier.name, str) or not tier.name):
            raise ConfigurationError(f"tiers[{index}].name must be a non-empty string or None; got {tier.name!r}")
        ttl = normalize_ttl(tier.ttl, what=f"tiers[{index}].ttl")
        if tier.breaker is not None and not isinstance(tier.breaker, CircuitBreaker):
            raise ConfigurationError(f"tiers[{index}].breaker must be a CircuitBreaker or None; got {tier.breaker!r}")
        name = tier.name or f"L{index + 1}-{tier.driver.name}"
        built.append(TierState(tier.driver, ttl, name, tier.breaker))
    return built
