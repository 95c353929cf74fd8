"""A repository over SQLAlchemy 2.0 sessions: reads cached, invalidated by session events at commit.

Problem: the same products, category pages and counts are loaded again and again; a second-level cache in
front of the ORM should serve them, and each write, wherever it is made, should clear exactly what it changed
once it commits: the product, the unscoped lists and counts, and the category pages the product left or
joined, not every category.

Solution: a repository class whose reads are ``@cached`` and return plain dicts (an ORM object belongs to the
session that loaded it and expires at commit; a dict can be stored by any driver and handed to any caller).
Writes are plain session work; ``invalidation.py`` listens to the sessionmaker's events and clears at commit.

E.g.::

    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")
    products = ProductRepository(sessionmaker(engine), Cache(driver="memory", ttl=300, namespace="shop"))
    products.add({"name": "Kettle", "category": "kitchen", "price_cents": 2999})
    products.get(1)
    products.list(limit=20, partition="by_category", partition_values={"category": "kitchen"})
    products.update(1, {"price_cents": 2499})

    with sessions.begin() as session:               # your own unit of work
        repo = products.bound(session)              # reads through it; uncached while it holds writes
        session.get(Product, 1).category = "garden"
        repo.get(1)                                 # sees the uncommitted write, caches nothing
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from cachekit import Cache, cached

from .invalidation import has_writes, track_invalidation
from .models import Product

__all__ = ["ProductRepository", "Row", "Rows"]

Row = dict[str, Any]
Rows = list[Row]
_Select = TypeVar("_Select", bound=sa.Select[Any])
_WRITABLE = ("name", "category", "price_cents")


class _UncachedWhileWriting:
    """Around a ``@cached`` read: when the repository's session holds uncommitted writes, read with
    ``skip_cache=True`` (neither serve an entry, which would hide the session's own writes, nor store what may
    be rolled back). The cached read's helpers (``.cache_key``, ``.uncached``, ...) stay reachable."""

    def __init__(self, read: Any) -> None:
        self.read = read
        self.__doc__ = read.__doc__

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        bound = self.read.__get__(instance, owner)
        return bound if instance is None else _SessionAwareRead(bound, instance)


class _SessionAwareRead:
    def __init__(self, bound: Any, repository: ProductRepository) -> None:
        self.bound = bound
        self.repository = repository

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.repository.in_transaction():
            kwargs["skip_cache"] = True
        return self.bound(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.bound, name)


class ProductRepository:
    """Cached reads of products; writes through any session of ``sessions`` clear what they change at commit.

    E.g.::

        repo = ProductRepository(sessionmaker(engine), Cache(driver="memory", ttl=300))
        repo.count(partition="by_category", partition_values={"category": "kitchen"})

    :param sessions: a ``sessionmaker``; its sessions' events drive the invalidation, and unbound reads and
        writes open their own session from it.
    :param cache: the :class:`~cachekit.Cache` to read through (found by ``@cached`` as ``self.cache``).
    :param session: read and write through this session instead (see :meth:`bound`).
    """

    #: The model read, and whose writes clear this repository's entries.
    model = Product
    #: The resource name in cache keys.
    name = "products"
    #: Lists and counts can be scoped to one category; a write clears only the categories it touched.
    partitions = {"by_category": ["category"]}

    def __init__(self, sessions: sessionmaker[Session], cache: Cache, *, session: Session | None = None) -> None:
        self.sessions = sessions
        self.cache = cache
        self.session = session
        track_invalidation(sessions, self)

    def bound(self, session: Session) -> ProductRepository:
        """The same repository (same cache, same keys) reading and writing through ``session``.

        Its writes join the session's transaction and are cleared when it commits; its reads bypass the cache
        while the session holds uncommitted writes.
        """
        bound = copy.copy(self)
        bound.session = session
        return bound

    def in_transaction(self) -> bool:
        """Whether reads run in a session holding uncommitted writes (then they bypass the cache)."""
        return self.session is not None and has_writes(self.session)

    # -- reads -----------------------------------------------------------------------------------------------

    @_UncachedWhileWriting
    @cached(action="get")
    def get(self, id: int) -> Row | None:
        """The product with this id, or ``None`` (cached too, until a write to that id)."""
        with self._reading() as session:
            product = session.get(Product, id)
            return None if product is None else _as_dict(product)

    @_UncachedWhileWriting
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
        with self._reading() as session:
            return [_as_dict(p) for p in session.scalars(statement)]

    @_UncachedWhileWriting
    @cached(action="count")
    def count(self, *, partition: str | None = None, partition_values: Mapping[str, Any] | None = None) -> int:
        """How many products there are (in one category when a partition is given)."""
        statement = self._scoped(sa.select(sa.func.count()).select_from(Product), partition, partition_values)
        with self._reading() as session:
            return int(session.scalar(statement) or 0)

    @_UncachedWhileWriting
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
        with self._reading() as session:
            return [_as_dict(p) for p in session.scalars(statement)]

    # -- writes: plain session work; the session events clear the cache when the transaction commits ---------

    def add(self, data: Mapping[str, Any]) -> Row:
        """Insert a product; returns it with its id."""
        with self._writing() as session:
            product = Product(**_writable(data, required=True))
            session.add(product)
            session.flush()  # assigns the id
            return _as_dict(product)

    def update(self, id: int, data: Mapping[str, Any]) -> Row | None:
        """Change some fields; returns the new row, or ``None`` when there is no such product."""
        fields = _writable(data, required=False)
        with self._writing() as session:
            product = session.get(Product, id)
            if product is None:
                return None
            for field, value in fields.items():
                setattr(product, field, value)
            session.flush()
            return _as_dict(product)

    def delete(self, id: int) -> bool:
        """Remove a product; returns whether there was one."""
        with self._writing() as session:
            product = session.get(Product, id)
            if product is None:
                return False
            session.delete(product)
            session.flush()
            return True

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Session]:
        if self.session is not None:
            yield self.session
            return
        with self.sessions() as session:
            yield session

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Session]:
        """The bound session (its owner commits), or a transaction of our own, committed at the end."""
        if self.session is not None:
            yield self.session
            return
        with self.sessions.begin() as session:
            yield session

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
