"""Building a :class:`~cachekit.Cache`: checking its options and creating its driver(s) and codec."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from ._executor import shared_executor
from ._options import reject_unknown_options
from ._redact import redact
from ._types import Clock, normalize_ttl
from .codecs import DEFAULT_MAX_VALUE_BYTES, Codec
from .drivers import Driver, create_driver, resolve_driver_class
from .errors import CacheWarning, ConfigurationError

_TIER_KEYS = frozenset({"driver", "ttl", "config", "name"})
#: What ``driver=`` may say next to ``drivers=[...]``: nothing, Cache's default, or the tiered driver.
_TIERED_NAMES = frozenset({"memory", "tiered"})

_DEFAULT_NAMESPACE = "cachekit"
#: The TTL used when none is given: five minutes, for every driver.
DEFAULT_TTL = 300.0
_CODEC_OPTIONS = ("enable_compression", "compression", "compression_threshold", "compression_level",
                  "serializer", "deserializer", "max_value_bytes", "signing_key", "verify_keys")
NAMESPACE_OPTION_NAMES = (*_CODEC_OPTIONS, "case_sensitive", "enable_stats", "async_workers")
#: Options in ``config`` that belong to the namespace (codec, keys, stats), not to the driver.
NAMESPACE_OPTIONS = frozenset(NAMESPACE_OPTION_NAMES)


def check_namespace(namespace: str | None) -> str:
    """The namespace as keys use it (stripped), refused when reserved or ambiguous *after* that normalisation.

    ``" ~gen"`` is refused like ``"~gen"`` (``~`` names the generation stores' own records), as are ``/`` (one
    namespace would contain another) and control characters (a newline would split a generation notification).
    """
    if namespace is None:
        return _DEFAULT_NAMESPACE
    name = namespace.strip() if isinstance(namespace, str) else ""
    if not name or "/" in name or name.startswith("~") or not name.isprintable():
        raise ConfigurationError(
            f"namespace must be a non-empty string of printable characters without '/' and not starting with '~' "
            f"(reserved) once stripped, such as 'users' (a '/' would let one namespace contain another); "
            f"got {namespace!r:.80}"
        )
    return name


def check_lock(enabled: object, timeout: object, driver: Driver) -> float | None:
    if not isinstance(enabled, bool):
        raise ConfigurationError(f"distributed_lock must be True or False; got {enabled!r}")
    if not enabled:
        normalize_ttl(timeout, what="lock_timeout")  # checked even while unused: a typo should not wait for a switch
        return None
    if not driver.supports_locks:
        raise ConfigurationError(
            f"distributed_lock=True needs a driver with cross-process locks (redis, or tiers including redis); "
            f"{driver.name!r} has none"
        )
    seconds = normalize_ttl(timeout, what="lock_timeout")
    if not seconds:
        raise ConfigurationError(f"lock_timeout must be > 0 seconds; got {timeout!r}")
    return seconds


def check_retries(attempts: int, delay: float) -> int:
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ConfigurationError(f"retry_attempts must be a whole number >= 1; got {attempts!r}")
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise ConfigurationError(f"retry_delay must be seconds >= 0; got {delay!r}")
    return attempts


def build_codec(options: Mapping[str, Any], clock: Clock) -> Codec:
    compress = options.get("enable_compression", False)
    if not isinstance(compress, bool):
        raise ConfigurationError(f"enable_compression must be True or False; got {compress!r}")
    if not compress and ("compression_threshold" in options or "compression" in options):
        warnings.warn(
            "compression options have no effect without enable_compression=True", CacheWarning, stacklevel=4
        )
    return Codec(
        options.get("serializer"),
        deserializer=options.get("deserializer"),
        compression=options.get("compression", "gzip"),
        compression_threshold=options.get("compression_threshold", 1024) if compress else None,
        compression_level=options.get("compression_level", 1),
        clock=clock,
        max_value_bytes=options.get("max_value_bytes", DEFAULT_MAX_VALUE_BYTES),
        signing_key=options.get("signing_key"),
        verify_keys=options.get("verify_keys", ()),
    )


def build_driver(
    driver: str | Driver | None,
    tiers: Sequence[Mapping[str, Any] | Driver] | None,
    options: dict[str, Any],
    promote_on_hit: bool,
    strategy: str,
    clock: Clock,
) -> Driver:
    if tiers is not None:
        # "memory" is Cache's default driver, so it cannot tell a contradiction from an omission.
        if isinstance(driver, Driver) or (driver is not None and str(driver).strip().lower() not in _TIERED_NAMES):
            raise ConfigurationError(
                f"driver={redact(repr(driver))} and drivers=[...] contradict each other: give drivers=[...] alone "
                "for a multi-tier cache (put that driver in a tier), or driver= alone"
            )
        if options:
            raise ConfigurationError(
                f"with drivers=[...] each tier takes its own 'config'; move {sorted(options)} into a tier"
            )
        from .drivers.tiered import Tier, TieredDriver

        built = [_build_tier(i, tier, clock, Tier) for i, tier in enumerate(tiers)]
        return TieredDriver(built, promote_on_hit=promote_on_hit, strategy=strategy, clock=clock)
    if isinstance(driver, Driver):
        if options:
            raise ConfigurationError(
                f"driver options {sorted(options)} only apply when the driver is given by name; "
                "configure the driver instance itself"
            )
        return driver
    if driver is None:
        raise ConfigurationError("driver is None: name one such as 'memory', or 'null' to turn caching off")
    if not isinstance(driver, str):
        raise ConfigurationError(f"driver must be a name such as 'memory' or a Driver instance; got {driver!r}")
    return _create(driver, options, clock)


def _create(name: str, options: Mapping[str, Any], clock: Clock) -> Driver:
    cls = resolve_driver_class(name)
    kwargs = dict(options)
    if "clock" in inspect.signature(cls).parameters:
        kwargs.setdefault("clock", clock)
    try:
        return create_driver(name, **kwargs)
    except TypeError as exc:
        accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "clock")]
        raise ConfigurationError(f"bad option for the {name!r} driver ({exc}); it accepts {accepted}") from exc


def _build_tier(index: int, tier: Mapping[str, Any] | Driver, clock: Clock, tier_cls: Any) -> Any:
    if isinstance(tier, Driver):
        return tier_cls(tier)
    if not isinstance(tier, Mapping) or "driver" not in tier:
        raise ConfigurationError(
            f"drivers[{index}] must be a Driver or a dict with a 'driver' key; got {redact(repr(tier))}"
        )
    reject_unknown_options(f"drivers[{index}]", set(tier) - _TIER_KEYS, sorted(_TIER_KEYS))
    misplaced = sorted(set(tier.get("config") or {}) & NAMESPACE_OPTIONS)
    if misplaced:
        raise ConfigurationError(
            f"drivers[{index}] config has {misplaced}, which apply to the whole cache (every tier stores the same "
            "blobs): move them to the top-level config=, e.g. CachePlugin(drivers=[...], config={...})"
        )
    inner = tier["driver"]
    built = inner if isinstance(inner, Driver) else _create(str(inner), dict(tier.get("config") or {}), clock)
    return tier_cls(built, ttl=normalize_ttl(tier.get("ttl"), what=f"drivers[{index}]['ttl']"), name=tier.get("name"))


def configure_async(driver: Driver, options: Mapping[str, Any]) -> None:
    """Apply ``config={"async_workers": N}``: the driver's blocking async twins run on a pool of N threads."""
    workers = options.get("async_workers")
    if workers is not None:
        driver.use_executor(shared_executor(workers))


def check_reclaimable(ttl: float | None, driver: Driver) -> None:
    """Refuse ``ttl=None`` where entries left under old generations would never be removed.

    Writes leave old entries unreachable rather than deleting them; they go by TTL, or by the backend's
    eviction. Redis (unless its ``maxmemory-policy`` evicts) and S3 (unless a lifecycle rule expires objects)
    keep them forever, so they need a TTL.
    """
    if ttl is not None:
        return
    tiers = getattr(driver, "tiers", None)
    drivers = [t.driver for t in tiers if t.ttl is None] if tiers is not None else [driver]
    unbounded = sorted(d.name for d in drivers if d.leaves_orphans)  # the backend never removes an entry itself
    if unbounded:
        raise ConfigurationError(
            f"ttl=None on {unbounded[0]!r} would keep every entry forever: a write leaves old entries unreachable "
            "instead of deleting them, and only a TTL removes them there. Give a ttl (seconds), or a tier ttl "
            "in drivers=[...]"
        )
