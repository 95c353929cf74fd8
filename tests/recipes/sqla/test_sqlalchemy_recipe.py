"""The SQLAlchemy recipe's reads and repository writes on SQLite (a file) and PostgreSQL (psycopg 3, a schema of
each test's own): hits are proved by counting the SELECTs the engine runs. Transactions, bulk statements and
concurrency: ``test_sqlalchemy_transactions.py``.

``recipes/sqlalchemy/`` holds the files the recipe's README tells users to copy, unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest

from recipes.sqlalchemy.repository import ProductRepository
from tests.recipes.sqla.helpers import GARDEN, KITCHEN, TOYS, SelectCounter, cached, warm


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


def test_a_refused_write_clears_nothing(repo: ProductRepository, catalogue: dict[str, Any]) -> None:
    kettle = catalogue["kettle"]
    assert repo.get(kettle["id"]) == kettle
    with pytest.raises(ValueError, match="unknown fields"):
        repo.update(kettle["id"], {"colour": "red"})
    assert cached(repo, repo.get, kettle["id"]) == kettle


def test_bad_partition_is_refused(repo: ProductRepository) -> None:
    with pytest.raises(ValueError, match="unknown partition 'by_price'"):
        repo.count(partition="by_price", partition_values={"price_cents": 1})
    with pytest.raises(ValueError, match="needs partition_values"):
        repo.count(partition="by_category", partition_values={"name": "x"})
