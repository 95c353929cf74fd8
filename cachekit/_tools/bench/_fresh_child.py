"""The repository of the ``freshness`` bench section, and its instruction-counting child (apart from
:mod:`._fresh`, which imports :mod:`._instructions`: no import circle)."""

from __future__ import annotations

from typing import Any

__all__ = ["POLICY", "RECORD", "SWR", "instruction_child", "repo"]

RECORD = {"id": "u1", "name": "Ann", "age": 41, "active": True, "score": 3.5, "tags": ["a", "b"],
          "region": "eu", "meta": {"k": 1}, "nothing": None, "email": "ann@example.com"}
POLICY = {"get": {"stale_while_revalidate": 600, "stale_if_error": 600, "early_refresh": True}}
SWR = {"get": {"stale_while_revalidate": 600, "stale_if_error": 600}}


def repo(cache: Any, load: Any = None) -> Any:
    from cachekit import cached

    class Repo:
        name = "users"

        def __init__(self) -> None:
            self.cache = cache

        @cached(action="get")
        def get(self, id: str) -> dict[str, Any]:
            if load is not None:
                load(id)
            return dict(RECORD)

    return Repo()


def instruction_child(row_id: str, hits: int, warmup: int) -> None:
    """A ``fresh_*`` row under callgrind: ``repo.get("u1")`` hits with the policies off or on."""
    from cachekit import Cache

    _, store, state = row_id.split("_")
    config = {"store": "objects"} if store == "objects" else {}
    policies = {"on": POLICY, "swr": SWR}.get(state)
    cache = Cache("memory", ttl=600, config=config, method_policies=policies)
    get = repo(cache).get
    for _ in range(warmup):
        get("u1")
    for _ in range(hits):
        get("u1")


