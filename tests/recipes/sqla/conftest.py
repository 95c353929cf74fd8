"""Fixtures of the SQLAlchemy recipe's tests (this folder only): an engine on SQLite (a file) or PostgreSQL (a
schema of the test's own), a SELECT counter, the repository over a fresh memory cache, and a small catalogue.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cachekit import Cache
from recipes.sqlalchemy.models import Base
from recipes.sqlalchemy.repository import ProductRepository
from tests.recipes.postgres import own_schema, sqlalchemy_url
from tests.recipes.sqla.helpers import SelectCounter


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            # A file, not ":memory:": an in-memory database is one connection per thread, which the repository's
            # own sessions would share with the caller's transaction.
            engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
        else:
            _, connect_args = stack.enter_context(own_schema())
            engine = sa.create_engine(sqlalchemy_url(), connect_args=connect_args)
        stack.callback(engine.dispose)
        Base.metadata.create_all(engine)
        with engine.connect():  # the dialect's first-connect queries, before anything counts SELECTs
            pass
        yield engine


@pytest.fixture
def sessions(engine: sa.Engine) -> sessionmaker[Session]:
    return sessionmaker(engine)


@pytest.fixture
def selects(engine: sa.Engine) -> SelectCounter:
    return SelectCounter(engine)


@pytest.fixture
def repo(sessions: sessionmaker[Session]) -> Iterator[ProductRepository]:
    with Cache(driver="memory", ttl=60, namespace="shop") as cache:
        yield ProductRepository(sessions, cache)


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
