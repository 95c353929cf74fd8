"""A cached repository over one SQLite table, with the standard library's ``sqlite3``.

Problem: every request reads the same few rows and the same list and count, each one a query; and when a row
changes, every cached copy of it (the row, each page of the list, the count) must go, or clients see the
old data.

Solution: decorate the reads with ``@cached`` and the writes with ``@invalidates``. A write clears the entries
of the row it touched and every list and count of the table; entries of other rows stay. Rows are cached as
plain dicts, which every driver can store.

E.g.::

    items = ItemRepository(sqlite3.connect("app.db"), Cache(driver="memory", ttl=60))
    items.get(1)                     # a query, then cached
    items.get(1)                     # from the cache
    items.update(1, {"price": 9.5})  # clears get(1), every list() and count()
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from cachekit import Cache, cached, invalidates

__all__ = ["SCHEMA", "ItemRepository", "Row", "Rows", "create_schema"]

Row = dict[str, Any]
Rows = list[Row]

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    price REAL NOT NULL
)
"""
_COLUMNS = "id, name, price"
_WRITABLE = ("name", "price")


def create_schema(db: sqlite3.Connection) -> None:
    """Create the ``items`` table if it is not there."""
    db.executescript(SCHEMA)


class ItemRepository:
    """Cached reads and invalidating writes of the ``items`` table.

    E.g.::

        repo = ItemRepository(db, cache)
        repo.insert({"name": "pen", "price": 1.5})   # {'id': 1, 'name': 'pen', 'price': 1.5}
        repo.list(limit=10)

    The object is cheap: make one per request around that request's connection. ``@cached`` finds the
    :class:`~cachekit.Cache` in the ``cache`` attribute and the resource name in ``name``.

    :param db: an open connection; the repository commits its own writes.
    :param cache: the application's cache (the same object for every request).
    """

    name = "items"

    def __init__(self, db: sqlite3.Connection, cache: Cache) -> None:
        self.db = db
        self.cache = cache

    # -- reads -----------------------------------------------------------------------------------------------

    @cached(action="get")
    def get(self, id: int) -> Row | None:
        """The item with this id, or ``None`` (cached too: a missing id is not queried again until written)."""
        return self._select(id)

    @cached(action="list")
    def list(self, limit: int | None = None, offset: int = 0) -> Rows:
        """Items by id, ``offset`` then at most ``limit``; each (limit, offset) is its own entry."""
        return _rows(
            self.db.execute(
                f"SELECT {_COLUMNS} FROM items ORDER BY id LIMIT ? OFFSET ?", (-1 if limit is None else limit, offset)
            )
        )

    @cached(action="count")
    def count(self) -> int:
        """How many items there are."""
        return int(self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    # -- writes: each clears what it changed, after it ran (also when it failed half-way) --------------------

    @invalidates("insert")
    def insert(self, data: Mapping[str, Any]) -> Row:
        """Add an item; returns it with its new id (the id is how the invalidation finds a cached miss)."""
        fields = _writable(data, required=True)
        with self.db:
            cursor = self.db.execute(
                f"INSERT INTO items ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
                tuple(fields.values()),
            )
        row = self._select(int(cursor.lastrowid or 0))
        if row is None:  # another connection deleted it in between: report it rather than return a guess
            raise LookupError(f"item {cursor.lastrowid} was deleted right after it was inserted")
        return row

    @invalidates("update")
    def update(self, id: int, data: Mapping[str, Any]) -> Row | None:
        """Change some fields of an item; returns the new row, or ``None`` when there is no such item."""
        fields = _writable(data, required=False)
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            with self.db:
                self.db.execute(f"UPDATE items SET {assignments} WHERE id = ?", (*fields.values(), id))
        return self._select(id)

    @invalidates("delete")
    def delete(self, id: int) -> bool:
        """Remove an item; returns whether there was one."""
        with self.db:
            return self.db.execute("DELETE FROM items WHERE id = ?", (id,)).rowcount > 0

    def _select(self, id: int) -> Row | None:
        found = _rows(self.db.execute(f"SELECT {_COLUMNS} FROM items WHERE id = ?", (id,)))
        return found[0] if found else None


def _rows(cursor: sqlite3.Cursor) -> Rows:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _writable(data: Mapping[str, Any], *, required: bool) -> dict[str, Any]:
    """The writable fields of ``data``, checked; column names come from this list, never from the client."""
    unknown = sorted(set(data) - set(_WRITABLE))
    if unknown:
        raise ValueError(f"unknown fields {unknown}; an item has {list(_WRITABLE)}")
    missing = [f for f in _WRITABLE if f not in data]
    if required and missing:
        raise ValueError(f"missing fields {missing}")
    fields = {f: data[f] for f in _WRITABLE if f in data}
    if "name" in fields and (not isinstance(fields["name"], str) or not fields["name"].strip()):
        raise ValueError("name must be a non-empty string")
    if "price" in fields and (isinstance(fields["price"], bool) or not isinstance(fields["price"], (int, float))):
        raise ValueError("price must be a number")
    return fields
