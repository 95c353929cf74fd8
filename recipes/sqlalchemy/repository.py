"""A repository over a SQLAlchemy 2.0 session, its reads cached and its writes invalidating, decorated by hand.

Problem: the same products, category pages and counts are loaded again and again; a second-level cache in
front of the ORM should serve them, and each write should clear exactly what it changed: the product, the
unscoped lists and counts, and the category pages the product left or joined, not every category.

Solution: a repository class whose reads are ``@cached`` and whose writes are ``@invalidates``. Reads return
plain dicts, not ORM objects: an ORM object belongs to the session that loaded it (and expires at commit),
while a dict can be stored by any driver and handed to any caller. Writes open their own transaction, so
the invalidation runs after the commit.

E.g.::

    engine = create_engine("postgresql+psycopg://...")
    products = ProductRepository(sessionmaker(engine), Cache(driver="memory", ttl=300, namespace="shop"))
    products.add({"name": "Kettle", "category": "kitchen", "price_cents": 2999})
    products.get(1)
    products.list(limit=20, partition="by_category", partition_values={"category": "kitchen"})
    products.update(1, {"price_cents": 2499, "category": "kitchen"})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cachekit import Cache, cached, invalidates

from .models import Product

__all__ = ["ProductRepository", "Row", "Rows"]

Row = dict[str, Any]
Rows = list[Row]
_Select = TypeVar("_Select", bound=sa.Select[Any])
_WRITABLE = ("name", "category", "price_cents")


def _no_old_row(self: ProductRepository, data: Mapping[str, Any]) -> None:
    """``before=`` of an insert: there is no old row. Saying so (rather than giving no ``before``) lets the
    invalidation clear only the new row's partition instead of every partition."""


class ProductRepository:
    """Cached reads of products, with writes that clear what they change.

    E.g.::

        repo = ProductRepository(sessionmaker(engine), Cache(driver="memory", ttl=300))
        repo.count(partition="by_category", partition_values={"category": "kitchen"})

    :param sessions: a ``sessionmaker``; each method opens and closes its own session.
    :param cache: the :class:`~cachekit.Cache` to read through (found by ``@cached`` as ``self.cache``).
    """

    #: The resource name in cache keys.
    name = "products"
    #: Lists and counts can be scoped to one category; a write clears only the categories it touched.
    partitions = {"by_category": ["category"]}

    def __init__(self, sessions: sessionmaker[Session], cache: Cache) -> None:
        self.sessions = sessions
        self.cache = cache

    # -- reads -----------------------------------------------------------------------------------------------

    @cached(action="get")
    def get(self, id: int) -> Row | None:
        """The product with this id, or ``None`` (cached too, until a write to that id)."""
        with self.sessions() as session:
            product = session.get(Product, id)
            return None if product is None else _as_dict(product)

    @cached(action="list")
    def list(
        self,
        *,
        limit: int | None = None,
        offset: int = 0,
        partition: str | None = None,
        partition_values: Mapping[str, Any] | None = None,
    ) -> Rows:
        """Products by id, ``offset`` then at most ``limit``; within one category when a partition is given."""
        statement = self._scoped(sa.select(Product), partition, partition_values)
        statement = statement.order_by(Product.id).offset(offset).limit(limit)
        with self.sessions() as session:
            return [_as_dict(p) for p in session.scalars(statement)]

    @cached(action="count")
    def count(self, *, partition: str | None = None, partition_values: Mapping[str, Any] | None = None) -> int:
        """How many products there are (in one category when a partition is given)."""
        statement = self._scoped(sa.select(sa.func.count()).select_from(Product), partition, partition_values)
        with self.sessions() as session:
            return int(session.scalar(statement) or 0)

    @cached(action="query", ttl=30)
    def query(
        self,
        *,
        name_contains: str | None = None,
        min_price_cents: int | None = None,
        max_price_cents: int | None = None,
        limit: int = 50,
    ) -> Rows:
        """A search; every argument is part of the key, and search results live 30 s at most."""
        statement = sa.select(Product).order_by(Product.price_cents, Product.id).limit(limit)
        if name_contains:
            statement = statement.where(Product.name.icontains(name_contains, autoescape=True))
        if min_price_cents is not None:
            statement = statement.where(Product.price_cents >= min_price_cents)
        if max_price_cents is not None:
            statement = statement.where(Product.price_cents <= max_price_cents)
        with self.sessions() as session:
            return [_as_dict(p) for p in session.scalars(statement)]

    # -- writes: each commits, then clears its id, the aggregates and the partitions of the old and new row ----

    @invalidates("add", before=_no_old_row)
    def add(self, data: Mapping[str, Any]) -> Row:
        """Insert a product; returns it with its id."""
        with self.sessions.begin() as session:
            product = Product(**_writable(data, required=True))
            session.add(product)
            session.flush()  # assigns the id
            return _as_dict(product)

    # before= reads the old row (uncached), so a product moved between categories clears both.
    @invalidates("update", before=lambda self, id, data: self.get.uncached(id))
    def update(self, id: int, data: Mapping[str, Any]) -> Row | None:
        """Change some fields; returns the new row, or ``None`` when there is no such product."""
        with self.sessions.begin() as session:
            product = session.get(Product, id)
            if product is None:
                return None
            for field, value in _writable(data, required=False).items():
                setattr(product, field, value)
            session.flush()
            return _as_dict(product)

    @invalidates("delete", before=lambda self, id: self.get.uncached(id))
    def delete(self, id: int) -> bool:
        """Remove a product; returns whether there was one."""
        with self.sessions.begin() as session:
            product = session.get(Product, id)
            if product is None:
                return False
            session.delete(product)
            return True

    # -- helpers ---------------------------------------------------------------------------------------------

    def _scoped(self, statement: _Select, partition: str | None, values: Mapping[str, Any] | None) -> _Select:
        if partition is None:
            return statement
        fields = self.partitions.get(partition)
        if fields is None:
            raise ValueError(f"unknown partition {partition!r}; declared: {sorted(self.partitions)}")
        if not values or set(values) != set(fields):
            raise ValueError(f"partition {partition!r} needs partition_values for {fields}; got {values!r}")
        return statement.filter_by(**values)


def _as_dict(product: Product) -> Row:
    """The product's columns as a plain dict (what is cached)."""
    return {attr.key: getattr(product, attr.key) for attr in sa.inspect(Product).column_attrs}


def _writable(data: Mapping[str, Any], *, required: bool) -> dict[str, Any]:
    unknown = sorted(set(data) - set(_WRITABLE))
    if unknown:
        raise ValueError(f"unknown fields {unknown}; a product has {list(_WRITABLE)}")
    missing = [f for f in _WRITABLE if f not in data]
    if required and missing:
        raise ValueError(f"missing fields {missing}")
    return {f: data[f] for f in _WRITABLE if f in data}
