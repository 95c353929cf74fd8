"""``@cached`` on staticmethods and classmethods caches like the class's other methods (issue 23, item 5).

With or without ``namespace=``, such a read finds the class's ``cache``, keys under the class's resource name,
and is cleared by the class's ``@invalidates`` writes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates


def _users(cache: Cache, *, explicit: bool, kind: str) -> Any:
    """A repository whose ``get`` is a static, class or async static method, and an ``update`` that clears it."""
    db = {"u1": {"name": "Ada"}}
    ns = cache if explicit else None

    class Users:
        name = "users"

        if kind == "static":

            @cached(action="get", namespace=ns)
            @staticmethod
            def get(id: str) -> dict[str, str]:
                return dict(db[id])

        elif kind == "class":

            @cached(action="get", namespace=ns)
            @classmethod
            def get(cls, id: str) -> dict[str, str]:
                return dict(db[id])

        else:

            @cached(action="get", namespace=ns)
            @staticmethod
            async def get(id: str) -> dict[str, str]:
                return dict(db[id])

        @invalidates("update")
        def update(self, id: str, data: dict[str, str]) -> dict[str, str]:
            db[id].update(data)
            return db[id]

    Users.cache = cache  # type: ignore[attr-defined]
    return Users


def _call(result: Any) -> Any:
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


@pytest.mark.parametrize("kind", ["static", "class", "async static"])
@pytest.mark.parametrize("explicit", [False, True], ids=["class cache", "namespace="])
def test_cleared_by_the_class_writes(kind: str, explicit: bool) -> None:
    cache = Cache(namespace="s")
    users = _users(cache, explicit=explicit, kind=kind)
    assert _call(users.get("u1")) == {"name": "Ada"}
    assert _call(users().get("u1")) == {"name": "Ada"}
    key = users.get.cache_key("u1")
    assert key.startswith("s/resource=users/action=get/")
    assert users().get.cache_key("u1") == key
    assert cache.keys() == [key]
    users().update("u1", {"name": "Grace"})
    assert _call(users.get("u1")) == {"name": "Grace"}
    assert _call(users().get("u1")) == {"name": "Grace"}


@pytest.mark.parametrize("explicit", [False, True], ids=["class cache", "namespace="])
def test_staticmethod_helpers(explicit: bool) -> None:
    cache = Cache(namespace="s")
    users = _users(cache, explicit=explicit, kind="static")
    users.get("u1")
    assert users.get.uncached("u1") == {"name": "Ada"}
    assert users().get.invalidate("u1") is True
    assert users.get.refresh("u1") == {"name": "Ada"}
    assert cache.keys() == [users.get.cache_key("u1")]
