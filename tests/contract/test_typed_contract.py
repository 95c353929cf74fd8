"""Typed results, versions and the async Cache API on every driver (issue 17), sync and async, real backends."""

import asyncio
import dataclasses
import datetime as dt
import enum

import pydantic
import pytest

from cachekit import Cache, cached
from cachekit.drivers.base import Driver
from tests.conftest import FakeClock


class Region(enum.StrEnum):
    EU = "eu"
    US = "us"


@dataclasses.dataclass(frozen=True)
class Address:
    city: str


@dataclasses.dataclass
class User:
    id: str
    address: Address
    region: Region = Region.EU
    tags: list[str] = dataclasses.field(default_factory=list)
    born: dt.date | None = None


class Item(pydantic.BaseModel):
    sku: str
    price: float
    when: dt.datetime


def user(id: str) -> User:
    return User(id, Address("Lyon"), Region.US, ["x"], dt.date(1999, 9, 9))


def item(sku: str) -> Item:
    return Item(sku=sku, price=2.5, when=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))


@pytest.fixture
def cache(driver: Driver, clock: FakeClock) -> Cache:
    return Cache(driver, namespace="typed-contract", ttl=60, clock=clock)


def test_typed_results_round_trip_sync(cache: Cache) -> None:
    calls: list[str] = []

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> User | None:
        calls.append(id)
        return None if id == "none" else user(id)

    @cached(action="query", namespace=cache, resource="items")
    def query(q: str) -> list[Item]:
        calls.append(q)
        return [item(q), item(q + "2")]

    for _ in range(3):
        assert get("u1") == user("u1")
        assert type(get("u1")) is User
        assert get("none") is None
        assert query("a") == [item("a"), item("a2")]
        assert type(query("a")[0]) is Item
    assert calls == ["u1", "none", "a"]


def test_typed_results_round_trip_async(cache: Cache) -> None:
    calls: list[str] = []

    @cached(action="get", namespace=cache, resource="users")
    async def get(id: str) -> User:
        calls.append(id)
        return user(id)

    @cached(action="get", namespace=cache, resource="items")
    async def get_item(id: str) -> Item:
        calls.append(id)
        return item(id)

    async def main() -> None:
        for _ in range(3):
            got = await get("u1")
            assert got == user("u1")
            assert type(got) is User
            assert await get_item("i1") == item("i1")

    asyncio.run(main())
    assert calls == ["u1", "i1"]


def test_versions_do_not_read_each_other(driver: Driver, clock: FakeClock) -> None:
    one = Cache(driver, namespace="versioned", version="1", clock=clock)
    two = Cache(driver, namespace="versioned", version="2", clock=clock)
    assert one.key_for("get", resource="users", params={"id": 1}) != two.key_for("get", resource="users",
                                                                                  params={"id": 1})  # fmt: skip
    calls: list[str] = []

    def reader(ns: Cache) -> object:
        @cached(action="get", namespace=ns, resource="users")
        def get(id: str) -> dict[str, str]:
            calls.append(ns.version or "")
            return {"version": ns.version or ""}

        return get

    get_one, get_two = reader(one), reader(two)
    assert get_one("a") == {"version": "1"}
    assert get_two("a") == {"version": "2"}
    assert get_one("a") == {"version": "1"}
    assert get_two("a") == {"version": "2"}
    assert calls == ["1", "2"]


def test_the_async_cache_api(cache: Cache) -> None:
    async def main() -> None:
        assert await cache.aset("k", {"a": 1})
        assert await cache.aget("k") == {"a": 1}
        assert await cache.aget("absent", "default") == "default"
        assert await cache.aset_many({"x": 1, "y": [2]}) == 2
        assert await cache.aget_many(["x", "y", "z"]) == {"x": 1, "y": [2]}
        assert await cache.adelete("x")
        assert not await cache.adelete("x")
        assert await cache.aget("x") is None

        @cached(action="get", namespace=cache, resource="users")
        async def get(id: str) -> dict[str, int]:
            loads.append(id)
            return {"n": len(loads)}

        loads: list[str] = []
        assert await get("u1") == {"n": 1}
        assert await get("u1") == {"n": 1}
        assert await cache.ainvalidate_resource("users") >= 1
        assert await get("u1") == {"n": 2}
        await cache.aclear()
        assert await cache.aget("k") is None
        assert await cache.aget("y") is None

    asyncio.run(main())
    assert cache.get("k") is None
