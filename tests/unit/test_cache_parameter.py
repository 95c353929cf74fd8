"""``@cached(cache=...)`` and ``@invalidates(cache=...)``: the decorators' Cache, named as it is everywhere else.

``namespace`` names a key space (``Cache(namespace="users")``); the decorators' ``namespace=`` took a Cache,
one word with two meanings. ``cache=`` is the name now; ``namespace=`` still takes a Cache (the older spelling),
and a namespace *name* given there is refused with the way to say it.
"""

from __future__ import annotations

import pytest

from cachekit import Cache, cached, invalidates
from cachekit.errors import ConfigurationError


def test_cache_names_the_cache_of_a_function_and_of_its_writes() -> None:
    cache = Cache(namespace="cp-fn")
    calls: list[str] = []

    @cached(action="get", cache=cache, resource="users")
    def get(id: str) -> dict[str, str]:
        calls.append(id)
        return {"id": id, "name": f"user {len(calls)}"}

    @invalidates("update", cache=cache, resource="users")
    def update(id: str, data: dict[str, str]) -> None:
        pass

    assert get("u1") == get("u1") == {"id": "u1", "name": "user 1"}
    assert calls == ["u1"]
    update("u1", {"name": "x"})
    assert get("u1") == {"id": "u1", "name": "user 2"}
    assert cache.stats().hits == 1


def test_namespace_is_still_the_older_spelling() -> None:
    cache = Cache(namespace="cp-old")

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> str:
        return id

    assert get("u1") == "u1"
    assert get.cache_key("u1").startswith("cp-old/resource=users/action=get/")


@pytest.mark.parametrize("decorator", [cached, invalidates])
def test_a_namespace_name_or_both_spellings_are_refused(decorator: object) -> None:
    cache = Cache(namespace="cp-bad")
    with pytest.raises(ConfigurationError, match=r"cache=Cache\(namespace='users'\)"):
        decorator("get", namespace="users")  # type: ignore[operator]
    with pytest.raises(ConfigurationError, match="pass the Cache once"):
        decorator("get", cache=cache, namespace=cache)  # type: ignore[operator]
    with pytest.raises(ConfigurationError, match=r"takes a cachekit.Cache; got 'users'"):
        decorator("get", cache="users")  # type: ignore[operator]
