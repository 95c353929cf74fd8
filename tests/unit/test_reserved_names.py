"""Reserved names checked after normalisation, and hand-written keys kept out of the decorated reads' space (#19).

``Cache(namespace=" ~gen")`` used to pass the check (made before ``strip()``) and write every namespace's
generation counters; a resource named ``~epoch`` collided with its namespace's epoch record; and
``cache.set(<a decorated read's key>)`` replaced what the decorated read returned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache, cached, invalidates
from cachekit.errors import ConfigurationError


class _Users:
    name = "users"
    partitions = {"by_region": ["region"]}

    def __init__(self, cache: Cache, name: str = "users") -> None:
        self.cache = cache
        self.name = name
        self.calls = 0

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any]:
        self.calls += 1
        return {"id": id, "admin": False}

    @cached(action="count")
    def count(self, region: str) -> int:
        return 7

    @invalidates(action="update")
    def update(self, id: str) -> None:
        pass


@pytest.mark.parametrize("namespace", [" ~gen", "~gen", "\t~epoch", " ~", "a\nb", "tab\there", "  ", "a/b"])
def test_a_reserved_or_ambiguous_namespace_is_refused_after_normalisation(namespace: str) -> None:
    with pytest.raises(ConfigurationError, match="namespace must be"):
        Cache(namespace=namespace)


def test_a_namespace_is_still_stripped() -> None:
    assert Cache(namespace="  users ").namespace == "users"


@pytest.mark.parametrize("resource", ["~epoch", "~gen", "~EPOCH"])
@pytest.mark.parametrize("case_sensitive", [True, False])
def test_a_reserved_resource_name_is_refused(resource: str, case_sensitive: bool) -> None:
    cache = Cache(namespace="app", config={"case_sensitive": case_sensitive})
    repo = _Users(cache, name=resource)
    with pytest.raises(ConfigurationError, match="reserved"):
        repo.get("u1")
    with pytest.raises(ConfigurationError, match="reserved"):
        repo.update("u1")
    with pytest.raises(ConfigurationError, match="reserved"):
        cache.invalidate_resource(resource)
    with pytest.raises(ConfigurationError, match="reserved"):
        cache.invalidate_partition(resource, "by_region", {"region": "eu"})
    assert repo.calls == 0


def test_a_resource_named_like_the_epoch_record_cannot_touch_the_filesystem_epoch(tmp_path: Path) -> None:
    cache = Cache(driver="filesystem", namespace="app", config={"directory": str(tmp_path)})
    try:
        with pytest.raises(ConfigurationError, match="reserved"):
            cache.invalidate_resource("~epoch")
    finally:
        cache.close()


@pytest.mark.parametrize("with_namespace", [True, False], ids=["full-key", "without-namespace"])
@pytest.mark.parametrize("read", ["get", "count"])
def test_a_hand_written_set_cannot_change_a_decorated_read(with_namespace: bool, read: str) -> None:
    cache = Cache(namespace="app")
    repo = _Users(cache)
    call: Any = (lambda: repo.get("bob")) if read == "get" else (lambda: repo.count("eu"))
    expected = call()
    key = repo.get.cache_key("bob") if read == "get" else repo.count.cache_key("eu")
    written = key if with_namespace else key[len("app/") :]
    with pytest.raises(ConfigurationError, match="belong to decorated reads"):
        cache.set(written, {"id": "bob", "admin": True})
    with pytest.raises(ConfigurationError, match="belong to decorated reads"):
        cache.set_many({"mine": 1, written: {"id": "bob", "admin": True}})
    assert cache.get("mine") is None  # nothing of a refused batch was stored
    assert call() == expected
    assert cache.get(key) == expected  # reading a decorated key by hand stays allowed


def test_hand_written_keys_still_work() -> None:
    cache = Cache(namespace="app")
    assert cache.set("totals", {"eu": 42})
    assert cache.set("resource=users", 1)  # not a read's key: no action= or partition= segment
    assert cache.set_many({"a/b": 1, "resource=users/custom/x": 2}) == 2
    assert cache.get("totals") == {"eu": 42}
    assert cache.get("resource=users/custom/x") == 2
    assert cache.delete("totals")
