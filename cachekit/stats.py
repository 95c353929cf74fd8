"""Cache statistics: a plain snapshot object, with no I/O, that namespaces and tiers produce and merge."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CacheStats", "ReadCounts"]


class ReadCounts:
    """A namespace's hit and miss counters, apart from it so its hit path can count without holding it."""

    __slots__ = ("hits", "misses")

    def __init__(self) -> None:
        self.hits = self.misses = 0


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of one cache's counters.

    E.g.::

        stats = cache.stats()
        print(f"{stats.hit_rate:.1%} of {stats.hits + stats.misses} reads hit")
    """

    hits: int = 0
    misses: int = 0
    sets: int = 0
    deletes: int = 0
    evictions: int = 0
    errors: int = 0
    size: int | None = None
    memory_usage_bytes: int | None = None
    enabled: bool = True
    driver: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def hit_rate(self) -> float:
        """Hits over reads, 0.0 when there were no reads."""
        reads = self.hits + self.misses
        return self.hits / reads if reads else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The counters as a plain dict, ``hit_rate`` included."""
        out = asdict(self)
        out["hit_rate"] = self.hit_rate
        return out

    def __add__(self, other: CacheStats) -> CacheStats:
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return CacheStats(
            hits=self.hits + other.hits,
            misses=self.misses + other.misses,
            sets=self.sets + other.sets,
            deletes=self.deletes + other.deletes,
            evictions=self.evictions + other.evictions,
            errors=self.errors + other.errors,
            size=add(self.size, other.size),
            memory_usage_bytes=add(self.memory_usage_bytes, other.memory_usage_bytes),
            enabled=self.enabled or other.enabled,
            driver=self.driver if self.driver == other.driver else "mixed",
        )
