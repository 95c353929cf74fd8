"""Checked by mypy only (``mypy --strict tests/typing/decorators_typing.py``), never run by pytest.

Decorated functions and methods must keep their signatures and return types for type checkers: a wrong
argument or a wrong use of the result is an error under ``@cached``/``@invalidates`` as it is without them.
The checks sit in functions that nothing calls, so importing this module runs none of them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cachekit import Cache, cached, invalidates

if TYPE_CHECKING:
    from typing_extensions import assert_type  # typing.assert_type is 3.11+; the package supports 3.10

cache = Cache(driver="memory", namespace="typing", ttl=60)


@cached(action="get", namespace=cache, resource="users")
def get_user(id: str, *, fields: list[str] | None = None) -> dict[str, Any] | None:
    return {"id": id}


@cached(action="count", namespace=cache, resource="users", ttl=timedelta(seconds=30))
async def count_users(region: str | None = None) -> int:
    return 0


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
    async def query(self, filter: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
        return []

    @invalidates("update")
    def update(self, id: str, data: dict[str, Any]) -> dict[str, Any]:
        return data

    @invalidates("delete")
    async def delete(self, id: str) -> None:
        return None


def return_types(repo: UserRepository) -> None:
    # Return types survive decoration.
    assert_type(get_user("u1"), dict[str, Any] | None)
    assert_type(get_user("u1", fields=["name"]), dict[str, Any] | None)
    assert_type(update_user("u1", {}), bool)
    assert_type(repo.get("u1"), dict[str, int])
    assert_type(repo.list_ids(limit=10), list[str])
    assert_type(UserRepository.count(partition="p"), int)
    assert_type(repo.count(), int)
    assert_type(UserRepository.lookup("a"), bytes)
    assert_type(repo.update("u1", {}), dict[str, Any])


async def coroutines(repo: UserRepository) -> None:
    assert_type(await count_users("eu"), int)
    assert_type(await repo.query({"age": 3}, limit=1), list[dict[str, Any]])
    assert_type(await repo.delete("u1"), None)


def signatures(repo: UserRepository) -> None:
    # Signatures survive decoration: each of these is an error, as it would be on the undecorated function.
    get_user(1)  # type: ignore[arg-type]
    get_user("u1", fields="name")  # type: ignore[arg-type]
    repo.get()  # type: ignore[call-arg]
    repo.list_ids(limit="10")  # type: ignore[arg-type]
    UserRepository.count(partition=3)  # type: ignore[arg-type]
    update_user("u1")  # type: ignore[call-arg]


def wrong_use_of_the_result(repo: UserRepository) -> str:
    return repo.get("u1")  # type: ignore[return-value]


def helpers(repo: UserRepository) -> tuple[str, object]:
    # The cache helpers exist at run time on every decorated callable (tests/unit/test_decorators.py), but the
    # decorators are typed as returning the function unchanged, so a type checker does not know them. When
    # cached() returns a typed wrapper, mypy reports these ignores as unused: delete them then.
    key: str = repo.get.cache_key("u1")  # type: ignore[attr-defined]
    fresh: object = repo.get.uncached("u1")  # type: ignore[attr-defined]
    get_user.invalidate("u1")  # type: ignore[attr-defined]
    get_user.refresh("u1")  # type: ignore[attr-defined]
    return key, fresh
