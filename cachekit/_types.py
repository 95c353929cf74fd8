"""Shared aliases, sentinels and small validators used across cachekit."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final, Literal, TypeAlias, final

from .errors import ConfigurationError

__all__ = ["DEFAULT", "MISSING", "TTL", "Blob", "Clock", "Key", "Missing", "check_key", "normalize_ttl"]

Key: TypeAlias = str
Blob: TypeAlias = bytes
TTL: TypeAlias = "float | int | timedelta | None"
Clock: TypeAlias = Callable[[], float]


@final
class Missing:
    """The type of :data:`MISSING`: a cache miss, distinct from a cached ``None``."""

    __slots__ = ()
    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> Literal[False]:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = Missing()


@final
class _Default:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT"


#: "Use the configured default" (e.g. the namespace's TTL), as opposed to ``None`` (no expiry).
DEFAULT: Final[Any] = _Default()


def normalize_ttl(ttl: object, *, what: str = "ttl") -> float | None:
    """Return ``ttl`` in seconds (``None`` = no expiry), or raise :class:`ConfigurationError`.

    Accepts ``int``, ``float`` and :class:`datetime.timedelta`; rejects negatives, NaN, infinity and ``bool``.
    """
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        try:
            seconds = float(ttl)
        except OverflowError:  # an int beyond float's range, e.g. 10**400
            raise ConfigurationError(
                f"{what} must be a finite number of seconds >= 0 (None means no expiry); got an int of "
                f"{len(str(abs(ttl)))} digits, too large for a float"
            ) from None
    else:
        raise ConfigurationError(
            f"{what} must be seconds (int or float), a datetime.timedelta, or None for no expiry; "
            f"got {type(ttl).__name__} {ttl!r}"
        )
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ConfigurationError(
            f"{what} must be a finite number of seconds >= 0 (None means no expiry); got {ttl!r}"
        )
    return seconds


def check_key(key: object) -> str:
    """Return ``key`` if it is a non-empty ``str``, else raise :class:`ConfigurationError` saying so."""
    if type(key) is str and key:
        return key
    if isinstance(key, str):
        if not key:
            raise ConfigurationError("cache key must be a non-empty string; got ''")
        return key
    raise ConfigurationError(f"cache key must be a non-empty string; got {type(key).__name__} {key!r}")
