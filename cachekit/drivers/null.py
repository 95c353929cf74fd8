"""The null driver: stores nothing, so caching is off without code changes (``driver="null"``)."""

from __future__ import annotations

from typing import Any

from .._types import MISSING, Missing
from .base import PROCESS, Driver

__all__ = ["NullDriver"]


class NullDriver(Driver):
    """A driver that never stores anything; every read is a miss.

    E.g.::

        Cache(driver="null")   # decorated reads always call through
    """

    name = "null"
    sharing = PROCESS
    blocking = False
    supports_async = True  # the default async twins run inline

    def __init__(self, **_ignored: Any) -> None:
        pass

    def get(self, key: str) -> bytes | Missing:
        return MISSING

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        return None

    def delete(self, key: str) -> bool:
        return False

    def clear(self, prefix: str = "") -> int:
        return 0

    def keys(self, prefix: str = "") -> list[str]:
        return []
