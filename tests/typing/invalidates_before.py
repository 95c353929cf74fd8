# pyright: strict
"""``@invalidates(before=...)`` as the README writes it checks clean under pyright's strict mode and mypy --strict.

Run by ``tests/unit/test_typing_invalidates.py``; no ``type: ignore`` anywhere.
"""

from __future__ import annotations

from typing import Any

from cachekit import Cache, cached, invalidates


class UserRepository:
    name = "users"
    cache = Cache(driver="memory")

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any] | None:
        return self.rows.get(id)

    @invalidates("update", before=lambda self, id, data: self.get.uncached(id))
    def update(self, id: str, data: dict[str, Any]) -> dict[str, Any]:
        self.rows[id] = {**self.rows.get(id, {}), **data}
        return self.rows[id]

    @invalidates("delete", before=lambda self, id: self.get.uncached(id))
    def delete(self, id: str) -> None:
        self.rows.pop(id, None)

    def _old(self, id: str, data: dict[str, Any]) -> dict[str, Any] | None:
        return self.rows.get(id)

    @invalidates("patch", before=_old)
    def patch(self, id: str, data: dict[str, Any]) -> dict[str, Any]:
        return self.update(id, data)


repo = UserRepository()
updated: dict[str, Any] = repo.update("u1", {"name": "Ada"})
repo.delete("u1")
