"""The SQLAlchemy recipe against SQLite: hits are proved by counting the SELECTs the engine runs.

``recipes/sqlalchemy/repository.py`` and ``models.py`` are the files the recipe's README tells users to copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from cachekit import Cache
from recipes.sqlalchemy.models import Base
from recipes.sqlalchemy.repository import ProductRepository

KITCHEN = {"partition": "by_category", "partition_values": {"category": "kitchen"}}
GARDEN = {"partition": "by_category", "partition_values": {"category": "garden"}}
TOYS = {"partition": "by_category", "partition_values": {"category": "toys"}}


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


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    engine = sa.create_engine("sqlite://")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def selects(engine: sa.Engine) -> SelectCounter:
    return SelectCounter(engine)


@pytest.fixture
def repo(engine: sa.Engine) -> Iterator[ProductRepository]:
    with Cache(driver="memory", ttl=60, namespace="shop") as cache:
        yield ProductRepository(sessionmaker(engine), cache)


@pytest.fixture
def catalogue(repo: ProductRepository) -> dict[str, dict[str, Any]]:
    products = {
        "kettle": repo.add({"name": "Kettle", "category": "kitchen", "price_cents": 2999}),
        "toaster": repo.add({"name": "Toaster", "category": "kitchen", "price_cents": 3999}),
        "rake": repo.add({"name": "Rake", "category": "garden", "price_cents": 1599}),
        "kite": repo.add({"name": "Kite", "category": "toys", "price_cents": 999}),
    }
    repo.cache.reset_stats()
    return products


def warm(repo: ProductRepository, *scopes: dict[str, Any]) -> None:
    repo.count()
    repo.list()
    for scope in scopes:
        repo.count(**scope)
        repo.list(**scope)


def test_reads_hit(repo: ProductRepository, selects: SelectCounter, catalogue: dict[str, Any]) -> None:
    kettle = catalogue["kettle"]
    assert selects.run(repo.get, kettle["id"]) == (kettle, 1)
    assert selects.run(repo.get, kettle["id"]) == (kettle, 0)
    assert selects.run(repo.count) == (4, 1)
    assert selects.run(repo.count) == (4, 0)
    assert selects.run(repo.count, **KITCHEN) == (2, 1)
    assert selects.run(repo.count, **KITCHEN) == (2, 0)
    names, ran = selects.run(repo.list, **KITCHEN)
    assert ([p["name"] for p in names], ran) == (["Kettle", "Toaster"], 1)
    assert selects.run(repo.list, **KITCHEN) == (names, 0)
    assert repo.cache.stats().hits == 4


def test_every_argument_is_in_the_key(repo: ProductRepository, selects: SelectCounter, catalogue: Any) -> None:
    first, _ = selects.run(repo.list, limit=2)
    second, ran = selects.run(repo.list, limit=2, offset=2)
    assert ran == 1
    assert [p["name"] for p in first + second] == ["Kettle", "Toaster", "Rake", "Kite"]
    cheap, _ = selects.run(repo.query, max_price_cents=1600)
    assert [p["name"] for p in cheap] == ["Kite", "Rake"]
    assert selects.run(repo.query, max_price_cents=1600) == (cheap, 0)
    assert [p["name"] for p in repo.query(name_contains="k")] == ["Kite", "Rake", "Kettle"]
    assert repo.query(name_contains="%") == []


def test_a_missing_row_is_cached_until_added(repo: ProductRepository, selects: SelectCounter) -> None:
    assert selects.run(repo.get, 1) == (None, 1)
    assert selects.run(repo.get, 1) == (None, 0)
    added = repo.add({"name": "Kettle", "category": "kitchen", "price_cents": 2999})
    assert added["id"] == 1
    assert repo.get(1) == added


def test_update_invalidates_the_row_and_aggregates(
    repo: ProductRepository, selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    kettle = catalogue["kettle"]
    repo.get(kettle["id"])
    warm(repo)
    query = repo.query(max_price_cents=3000)
    updated = repo.update(kettle["id"], {"price_cents": 3499})
    assert updated == {**kettle, "price_cents": 3499}
    assert selects.run(repo.get, kettle["id"]) == (updated, 1)
    assert updated in repo.list()
    assert repo.query(max_price_cents=3000) == [p for p in query if p["id"] != kettle["id"]]


def test_update_keeps_other_rows_cached(
    repo: ProductRepository, selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    rake = catalogue["rake"]
    repo.get(rake["id"])
    repo.update(catalogue["kettle"]["id"], {"name": "Steel kettle"})
    assert selects.run(repo.get, rake["id"]) == (rake, 0)


def test_update_within_a_category_keeps_other_categories(
    repo: ProductRepository, selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    warm(repo, KITCHEN, GARDEN)
    repo.update(catalogue["kettle"]["id"], {"price_cents": 2499, "category": "kitchen"})
    assert selects.run(repo.count, **GARDEN) == (1, 0)
    assert selects.run(repo.list, **GARDEN)[1] == 0
    kitchen, ran = selects.run(repo.list, **KITCHEN)
    assert ran == 1
    assert [p["price_cents"] for p in kitchen] == [2499, 3999]
    assert selects.run(repo.count)[1] == 1


def test_partial_update_is_fresh_everywhere(
    repo: ProductRepository, selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    warm(repo, KITCHEN, GARDEN)
    repo.update(catalogue["kettle"]["id"], {"price_cents": 1999})
    assert [p["price_cents"] for p in repo.list(**KITCHEN)] == [1999, 3999]
    assert repo.count(**GARDEN) == 1


def test_moving_a_product_clears_both_categories_only(
    repo: ProductRepository, selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    warm(repo, KITCHEN, GARDEN, TOYS)
    repo.update(catalogue["kettle"]["id"], {"category": "garden"})
    assert selects.run(repo.count, **KITCHEN) == (1, 1)
    assert selects.run(repo.count, **GARDEN) == (2, 1)
    assert selects.run(repo.count, **TOYS) == (1, 0)
    assert selects.run(repo.count) == (4, 1)


def test_delete_clears_its_category_only(
    repo: ProductRepository, selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    rake = catalogue["rake"]
    repo.get(rake["id"])
    warm(repo, KITCHEN, GARDEN)
    assert repo.delete(rake["id"]) is True
    assert selects.run(repo.get, rake["id"]) == (None, 1)
    assert selects.run(repo.count, **GARDEN) == (0, 1)
    assert selects.run(repo.count, **KITCHEN) == (2, 0)
    assert selects.run(repo.count) == (3, 1)
    assert repo.delete(rake["id"]) is False


def test_add_clears_its_category_only(
    repo: ProductRepository, selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    warm(repo, KITCHEN, GARDEN)
    repo.add({"name": "Hoe", "category": "garden", "price_cents": 1299})
    assert selects.run(repo.count, **KITCHEN) == (2, 0)
    assert selects.run(repo.count, **GARDEN) == (2, 1)
    assert selects.run(repo.count) == (5, 1)
    assert "Hoe" in {p["name"] for p in repo.list(**GARDEN)}


def test_a_failed_write_still_invalidates(repo: ProductRepository, catalogue: dict[str, Any]) -> None:
    kettle = catalogue["kettle"]
    assert repo.get(kettle["id"]) == kettle
    with pytest.raises(ValueError, match="unknown fields"):
        repo.update(kettle["id"], {"colour": "red"})
    assert repo.cache.get(repo.get.cache_key(kettle["id"]), "gone") == "gone"


def test_bad_partition_is_refused(repo: ProductRepository) -> None:
    with pytest.raises(ValueError, match="unknown partition 'by_price'"):
        repo.count(partition="by_price", partition_values={"price_cents": 1})
    with pytest.raises(ValueError, match="needs partition_values"):
        repo.count(partition="by_category", partition_values={"name": "x"})
