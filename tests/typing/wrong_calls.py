"""Calls a type checker must reject: each line marked ``# error`` must be reported, and no other line.

``tests/unit/test_typing.py`` runs ``mypy --strict`` and ``pyright`` on this file and compares the lines.
"""

from __future__ import annotations

from typing import Any

from cachekit import Cache, cached, invalidates

cache = Cache(driver="memory", namespace="typing-errors", ttl=60)


@cached(action="get", namespace=cache, resource="users")
def get_user(id: str, *, fields: list[str] | None = None) -> dict[str, Any] | None:
    return {"id": id}


@invalidates("update", namespace=cache, resource="users")
def update_user(id: str, data: dict[str, Any]) -> bool:
    return True


class UserRepository:
    name = "users"
    cache = cache

    @cached(action="get")
    def get(self, id: str) -> dict[str, int]:
        return {}

    @cached(action="list_ids")
    def list_ids(self, limit: int | None = None, offset: int = 0) -> list[str]:
        return []

    @cached(action="count")
    @classmethod
    def count(cls, *, partition: str | None = None) -> int:
        return 0

    @cached(action="get", namespace=cache)
    @staticmethod
    def lookup(id: str) -> bytes:
        return b""

    @cached(action="query")
    async def query(self, filter: dict[str, Any], **options: int) -> list[dict[str, Any]]:
        return []


def wrong_arguments(repo: UserRepository) -> None:
    get_user(1)  # error
    get_user("u1", fields="name")  # error
    repo.get()  # error
    repo.get(1)  # error
    repo.list_ids(limit="10")  # error
    UserRepository.count(partition=3)  # error
    repo.count(3)  # error
    UserRepository.lookup(3)  # error
    repo.lookup(3)  # error
    update_user("u1")  # error
    UserRepository.get("u1")  # error


def wrong_helper_arguments(repo: UserRepository) -> None:
    repo.get.cache_key(1)  # error
    repo.get.uncached()  # error
    get_user.invalidate("u1", fields=3)  # error
    UserRepository.count.refresh(partition=b"p")  # error
    repo.lookup.cache_key(1)  # error
    repo.get.no_such_helper("u1")  # error


def wrong_use_of_the_result(repo: UserRepository) -> None:
    text: str = repo.get("u1")  # error
    key: int = repo.get.cache_key("u1")  # error
    removed: str = get_user.invalidate("u1")  # error
    skipped: str = repo.get("u1", skip_cache=True)  # error
    print(text, key, removed, skipped)


async def wrong_async_use(repo: UserRepository) -> None:
    rows: int = await repo.query({})  # error
    await repo.query({}, limit="1")  # error
    print(rows)
