"""The guarantee the recipes' concurrency tests check, reduced to one deterministic race in ``Cache``.

A read that begins after an invalidation returned must not get a value loaded before it. Before keys embedded
generations, a call that missed after the invalidation joined (single flight) the load another call had begun
before it, and got that call's old value; the recipes' concurrency tests found it as a few stale reads in 10 s
on PostgreSQL. Now the invalidation changes the key, so the late call loads under a key of its own.
"""

from __future__ import annotations

import threading

from cachekit import Cache, Invalidation, cached


class Repo:
    name = "rows"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.version = 1
        self.loading = threading.Event()
        self.release = threading.Event()

    @cached(action="get")
    def get(self, id: int) -> int:
        version = self.version  # the database read
        if not self.release.is_set():
            self.loading.set()
            assert self.release.wait(10), "the test did not release the load"
        return version


def race(single_flight: bool) -> tuple[int, int]:
    """(what the caller that began before the write got, what the caller that began after it got)."""
    with Cache(driver="memory", namespace="race", single_flight=single_flight) as cache:
        repo = Repo(cache)
        results: dict[str, int] = {}
        early = threading.Thread(target=lambda: results.__setitem__("early", repo.get(1)))
        early.start()
        assert repo.loading.wait(10)
        repo.version = 2  # the writer commits ...
        cache.invalidate(Invalidation("rows", ids=[1]))  # ... and its invalidation returns
        late = threading.Thread(target=lambda: results.__setitem__("late", repo.get(1)))
        late.start()
        late.join(0.5)  # joins the early load (single flight) or loads for itself
        repo.release.set()
        early.join(10)
        late.join(10)
        return results["early"], results["late"]


def test_without_single_flight_a_read_after_the_invalidation_is_fresh() -> None:
    assert race(single_flight=False) == (1, 2)


def test_with_single_flight_a_read_after_the_invalidation_is_fresh() -> None:
    assert race(single_flight=True) == (1, 2)
