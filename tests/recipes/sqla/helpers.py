"""Helpers of the SQLAlchemy recipe's tests: category scopes, a SELECT counter, cache peeks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from recipes.sqlalchemy.repository import ProductRepository

KITCHEN = {"partition": "by_category", "partition_values": {"category": "kitchen"}}
GARDEN = {"partition": "by_category", "partition_values": {"category": "garden"}}
TOYS = {"partition": "by_category", "partition_values": {"category": "toys"}}
MISSING = object()


def cached(repo: ProductRepository, read: Any, *args: Any, **kwargs: Any) -> Any:
    """The entry ``read(*args, **kwargs)`` would return from the cache, or :data:`MISSING`."""
    return repo.cache.get(read.cache_key(*args, **kwargs), MISSING)


class SelectCounter:
    """Counts the SELECT statements an engine sends to the database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.count += 1

    def run(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
        """``call(*args, **kwargs)`` and how many SELECTs it ran."""
        before = self.count
        result = call(*args, **kwargs)
        return result, self.count - before


def warm(repo: ProductRepository, *scopes: dict[str, Any]) -> None:
    repo.count()
    repo.list()
    for scope in scopes:
        repo.count(**scope)
        repo.list(**scope)
