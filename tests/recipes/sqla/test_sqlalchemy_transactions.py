"""The SQLAlchemy recipe's session events on SQLite (a file) and PostgreSQL: clears at commit for any session of
the sessionmaker, bulk statements, rollbacks and savepoints, reads inside a transaction, and a writer against
four concurrent readers (PostgreSQL).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from recipes.sqlalchemy.models import Product
from recipes.sqlalchemy.repository import ProductRepository
from tests.recipes.sqla.helpers import GARDEN, KITCHEN, MISSING, TOYS, SelectCounter, cached, warm

# -- writes through the application's own sessions: cleared at commit by the session events -------------------


def test_a_unit_of_work_clears_at_commit_not_before(
    repo: ProductRepository, sessions: sessionmaker[Session], selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    kettle = catalogue["kettle"]
    repo.get(kettle["id"])
    warm(repo, KITCHEN, GARDEN)
    with sessions.begin() as session:
        session.get(Product, kettle["id"]).price_cents = 1
        session.flush()
        # Flushed, not committed: other sessions still read the committed row, so the entries stay.
        assert cached(repo, repo.get, kettle["id"]) == kettle
    assert cached(repo, repo.get, kettle["id"]) is MISSING
    assert repo.get(kettle["id"])["price_cents"] == 1
    assert selects.run(repo.count, **GARDEN) == (1, 0)
    assert selects.run(repo.count, **KITCHEN)[1] == 1


def test_a_move_in_a_unit_of_work_clears_both_categories_only(
    repo: ProductRepository, sessions: sessionmaker[Session], selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    warm(repo, KITCHEN, GARDEN, TOYS)
    with sessions.begin() as session:
        session.get(Product, catalogue["toaster"]["id"]).category = "garden"
    assert selects.run(repo.count, **KITCHEN) == (1, 1)
    assert selects.run(repo.count, **GARDEN) == (2, 1)
    assert selects.run(repo.count, **TOYS) == (1, 0)


def test_an_unknown_old_category_clears_every_category(
    repo: ProductRepository, sessions: sessionmaker[Session], selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    warm(repo, KITCHEN, TOYS)
    with sessions.begin() as session:
        product = session.get(Product, catalogue["kettle"]["id"])
        session.expire(product, ["category"])
        product.category = "garden"  # set without its old value loaded: the category it left is unknown
    assert selects.run(repo.count, **TOYS) == (1, 1)
    assert selects.run(repo.count, **KITCHEN) == (1, 1)


def test_a_rolled_back_unit_of_work_clears_nothing(
    repo: ProductRepository, sessions: sessionmaker[Session], selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    kettle = catalogue["kettle"]
    repo.get(kettle["id"])
    warm(repo, KITCHEN)
    with sessions() as session:
        session.get(Product, kettle["id"]).category = "toys"
        session.add(Product(name="Ghost", category="kitchen", price_cents=1))
        session.flush()
        session.rollback()
        session.commit()  # nothing left to commit: the noted clears went with the rollback
    assert selects.run(repo.get, kettle["id"]) == (kettle, 0)
    assert selects.run(repo.count, **KITCHEN) == (2, 0)


def test_a_read_in_a_transaction_that_rolls_back_is_not_cached(
    repo: ProductRepository, sessions: sessionmaker[Session], catalogue: dict[str, Any]
) -> None:
    kettle = catalogue["kettle"]
    with sessions() as session:
        mine = repo.bound(session)
        session.get(Product, kettle["id"]).price_cents = 5
        assert mine.in_transaction()
        # The session's own, uncommitted write, past the cache; and nothing stored.
        assert mine.get(kettle["id"])["price_cents"] == 5
        assert mine.count(**KITCHEN) == 2
        session.rollback()
    assert cached(repo, repo.get, kettle["id"]) is MISSING
    assert cached(repo, repo.count, **KITCHEN) is MISSING
    assert repo.get(kettle["id"]) == kettle


def test_bound_reads_of_a_clean_session_are_cached(
    repo: ProductRepository, sessions: sessionmaker[Session], selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    kettle = catalogue["kettle"]
    with sessions() as session:
        mine = repo.bound(session)
        assert not mine.in_transaction()
        assert selects.run(mine.get, kettle["id"]) == (kettle, 1)
        assert selects.run(mine.get, kettle["id"]) == (kettle, 0)
    assert selects.run(repo.get, kettle["id"]) == (kettle, 0)  # the same entry


def test_bound_writes_join_the_callers_transaction(
    repo: ProductRepository, sessions: sessionmaker[Session], catalogue: dict[str, Any]
) -> None:
    kettle = catalogue["kettle"]
    repo.get(kettle["id"])
    with sessions.begin() as session:
        repo.bound(session).update(kettle["id"], {"name": "Steel kettle"})
        assert cached(repo, repo.get, kettle["id"]) == kettle
    assert repo.get(kettle["id"])["name"] == "Steel kettle"


# pysqlite's own transaction handling breaks SAVEPOINT without extra engine events: PostgreSQL only.
@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_a_savepoint_rollback_keeps_the_outer_transactions_clears(
    repo: ProductRepository, sessions: sessionmaker[Session], catalogue: dict[str, Any]
) -> None:
    kettle, rake = catalogue["kettle"], catalogue["rake"]
    repo.get(kettle["id"])
    repo.get(rake["id"])
    with sessions.begin() as session:
        session.get(Product, kettle["id"]).price_cents = 7
        session.flush()
        nested = session.begin_nested()
        session.get(Product, rake["id"]).price_cents = 8
        session.flush()
        nested.rollback()
    assert repo.get(kettle["id"])["price_cents"] == 7
    assert repo.get(rake["id"]) == rake


# -- bulk statements: session.execute(update(...)), delete(...), insert(...) ---------------------------------------


def test_a_bulk_update_clears_the_model_at_commit(
    repo: ProductRepository, sessions: sessionmaker[Session], selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    rake = catalogue["rake"]
    repo.get(rake["id"])
    warm(repo, KITCHEN)
    with sessions.begin() as session:
        session.execute(sa.update(Product).where(Product.category == "kitchen").values(price_cents=100))
        assert cached(repo, repo.count, **KITCHEN) == 2  # not committed yet
    assert [p["price_cents"] for p in repo.list(**KITCHEN)] == [100, 100]
    # The rows a bulk statement touched are not known: every entry of the model is cleared.
    assert selects.run(repo.get, rake["id"]) == (rake, 1)


def test_a_rolled_back_bulk_update_clears_nothing(
    repo: ProductRepository, sessions: sessionmaker[Session], selects: SelectCounter, catalogue: dict[str, Any]
) -> None:
    warm(repo, KITCHEN)
    with sessions() as session:
        session.execute(sa.update(Product).values(price_cents=0))
        session.rollback()
    assert selects.run(repo.count, **KITCHEN) == (2, 0)


def test_bulk_delete_and_insert_statements_clear_the_model(
    repo: ProductRepository, sessions: sessionmaker[Session], catalogue: dict[str, Any]
) -> None:
    warm(repo, GARDEN)
    with sessions.begin() as session:
        session.execute(sa.delete(Product).where(Product.category == "garden"))
    assert repo.count(**GARDEN) == 0
    with sessions.begin() as session:
        session.execute(sa.insert(Product), [{"name": "Hoe", "category": "garden", "price_cents": 1299}])
    assert repo.count(**GARDEN) == 1
    assert repo.count() == 4


def test_a_core_update_of_the_table_clears_the_model(
    repo: ProductRepository, sessions: sessionmaker[Session], catalogue: dict[str, Any]
) -> None:
    kettle = catalogue["kettle"]
    repo.get(kettle["id"])
    table = Product.__table__
    with sessions.begin() as session:
        session.execute(sa.update(table).where(table.c.id == kettle["id"]).values(name="Core kettle"))
    assert repo.get(kettle["id"])["name"] == "Core kettle"


def test_sql_around_the_session_events_is_not_seen(
    repo: ProductRepository, sessions: sessionmaker[Session], catalogue: dict[str, Any]
) -> None:
    # The control: what the events do not see stays cached until invalidated by hand.
    kettle = catalogue["kettle"]
    repo.get(kettle["id"])
    with sessions.begin() as session:
        session.connection().execute(sa.text("UPDATE products SET name = 'Raw' WHERE id = :id"), {"id": kettle["id"]})
    assert repo.get(kettle["id"]) == kettle
    assert repo.cache.invalidate_resource(repo.name) > 0
    assert repo.get(kettle["id"])["name"] == "Raw"


# -- concurrency ------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_no_stale_read_after_commit(
    repo: ProductRepository, sessions: sessionmaker[Session], catalogue: dict[str, Any]
) -> None:
    """A writer committing in one connection, four readers in others, 10 s: no read returns a version older than
    the last commit that returned before the read began."""
    pk = catalogue["kettle"]["id"]
    committed = [catalogue["kettle"]["price_cents"]]
    stop = threading.Event()
    stale: list[tuple[str, int, int]] = []
    errors: list[BaseException] = []
    reads = [0] * 4

    def read(index: int) -> None:
        try:
            while not stop.is_set():
                floor = committed[0]
                version = repo.get(pk)["price_cents"]
                if version < floor:
                    stale.append(("get", floor, version))
                floor = committed[0]
                version = next(p["price_cents"] for p in repo.list(**KITCHEN) if p["id"] == pk)
                if version < floor:
                    stale.append(("list", floor, version))
                reads[index] += 2
                time.sleep(0.0005)  # let the writer run: the GIL would starve it
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(len(reads))]
    for thread in threads:
        thread.start()
    version, deadline = committed[0], time.monotonic() + 10.0
    writes = 0
    try:
        while time.monotonic() < deadline and writes < 100_000 and not errors:
            version += 1
            with sessions.begin() as session:
                if version % 2:
                    session.get(Product, pk).price_cents = version
                else:
                    session.execute(sa.update(Product).where(Product.id == pk).values(price_cents=version))
            committed[0] = version
            writes += 1
            time.sleep(0.002)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    assert stale == [], f"{len(stale)} stale reads of {sum(reads)}; first: {stale[:5]}"
    assert writes > 20
    assert min(reads) > 0
    assert repo.cache.stats().hits > 0
