# pyright: strict
"""Checked by ``mypy --strict`` and ``pyright`` (both run by ``.ci/test``), never run by pytest; no ignores.

Decorated functions and methods keep their signatures and return types for type checkers, and ``@cached`` ones
expose ``.cache_key``, ``.uncached``, ``.invalidate``, ``.refresh`` and ``skip_cache=``. The calls that must be
errors are in ``wrong_calls.py``, checked by ``tests/unit/test_typing.py``. The checks sit in functions that
nothing calls, so importing this module runs none of them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cachekit import Cache, CachePlugin, cached, invalidates

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


def helpers(repo: UserRepository) -> None:
    # The cache helpers take the call's arguments and are typed from the function.
    assert_type(repo.get.cache_key("u1"), str)
    assert_type(repo.get.uncached("u1"), dict[str, int])
    assert_type(repo.get.invalidate("u1"), bool)
    assert_type(repo.get.refresh(id="u1"), dict[str, int])
    assert_type(UserRepository.get.cache_key(repo, "u1"), str)  # through the class, self is the first argument
    assert_type(UserRepository.get(repo, "u1"), dict[str, int])
    assert_type(get_user.cache_key("u1", fields=["name"]), str)
    assert_type(get_user.uncached("u1"), dict[str, Any] | None)
    assert_type(get_user.invalidate("u1"), bool)
    assert_type(get_user.refresh("u1"), dict[str, Any] | None)
    assert_type(UserRepository.count.cache_key(partition="p"), str)  # a classmethod: bound to the class
    assert_type(repo.count.uncached(partition="p"), int)
    assert_type(UserRepository.lookup.cache_key("a"), str)  # a staticmethod: nothing bound
    assert_type(repo.lookup.uncached("a"), bytes)
    assert_type(repo.list_ids.invalidate(limit=1, offset=2), bool)


def skip_cache(repo: UserRepository) -> None:
    # skip_cache= is accepted on every call and keeps the return type.
    assert_type(repo.get("u1", skip_cache=True), dict[str, int])
    assert_type(get_user("u1", skip_cache=True), dict[str, Any] | None)
    assert_type(UserRepository.count(skip_cache=True), int)
    assert_type(UserRepository.lookup("a", skip_cache=False), bytes)


async def async_helpers(repo: UserRepository) -> None:
    assert_type(await repo.query.uncached({"age": 3}), list[dict[str, Any]])
    assert_type(await count_users.uncached("eu"), int)
    assert_type(repo.query.cache_key({"age": 3}, limit=1), str)
    assert_type(await repo.query({}, skip_cache=True), list[dict[str, Any]])


def lazily_loaded_names() -> None:
    # cached, invalidates and CachePlugin load on first use at run time; type checkers still see the real ones.
    plugin = CachePlugin(driver="memory", ttl=30)
    assert_type(plugin.slug, str)
