"""What the Cache promises on top of every driver: envelope TTL, fail-open on corrupt blobs, read-through."""

from __future__ import annotations

import pytest

from cachekit import Cache, Invalidation, cached
from cachekit.drivers.base import Driver
from tests.conftest import FakeClock


@pytest.fixture
def cache(driver: Driver, clock: FakeClock) -> Cache:
    return Cache(driver, namespace="contract", ttl=60, clock=clock)


def test_values_round_trip_through_the_codec(cache: Cache) -> None:
    value = {"id": "u1", "tags": ("a", "b"), "n": None, "nested": {"x": [1, 2.5]}}
    assert cache.set("k", value)
    assert cache.get("k") == value
    assert cache.set("none", None)
    assert cache.get("none", default="absent") is None
    assert cache.get("other", default="absent") == "absent"


def test_envelope_ttl_applies_on_every_driver(cache: Cache, clock: FakeClock) -> None:
    # The cache's own clock decides, even where the backend (Redis) would keep the entry longer.
    cache.set("k", "v", ttl=5)
    clock.advance(4)
    assert cache.get("k") == "v"
    clock.advance(2)
    assert cache.get("k") is None


def test_corrupt_blob_is_a_miss_counted_and_dropped(cache: Cache, driver: Driver) -> None:
    key = cache.prefix + "bad"
    driver.set(key, b"\x00garbage that is no envelope")
    assert cache.get("bad", default="fresh") == "fresh"
    assert cache.stats().errors == 1
    assert driver.get(key).__class__.__name__ == "Missing"


def test_namespaces_sharing_a_driver_do_not_see_each_other(driver: Driver, clock: FakeClock) -> None:
    a, b = Cache(driver, namespace="a", clock=clock), Cache(driver, namespace="ab", clock=clock)
    a.set("k", 1)
    b.set("k", 2)
    assert (a.get("k"), b.get("k")) == (1, 2)
    a.clear()
    assert (a.get("k"), b.get("k")) == (None, 2)


def test_read_through_and_invalidation_never_serve_stale(cache: Cache) -> None:
    rows = {"u1": {"id": "u1", "name": "Ada"}}
    calls: list[str] = []

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> dict[str, str]:
        calls.append(id)
        return dict(rows[id])

    assert get("u1") == {"id": "u1", "name": "Ada"}
    assert get("u1") == {"id": "u1", "name": "Ada"}
    assert calls == ["u1"]
    rows["u1"]["name"] = "Grace"
    cache.invalidate(Invalidation("users", ids=["u1"]))
    assert get("u1") == {"id": "u1", "name": "Grace"}
    assert calls == ["u1", "u1"]
