"""The backend contract (``cachekit.drivers.base``): capabilities and generation stores come from the driver.

No driver is known by name in the core: a driver declares who shares its entries (``sharing``), whether its
backend leaves old entries forever (``leaves_orphans``), and brings its generation store. A shared driver that
brings none is refused, never given in-process generations (which would serve, in this process, entries that
another process's write invalidated).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cachekit import MISSING, Cache, Invalidation, cached
from cachekit.drivers import _REGISTRY, register_driver, resolve_driver_class
from cachekit.drivers.base import HOST, NETWORK, PROCESS, Driver
from cachekit.drivers.memory import MemoryDriver
from cachekit.errors import ConfigurationError
from cachekit.generations import MemoryGenerations, store_for
from tests.unit.example_shared_driver import SERVERS, SharedDictDriver, SharedDictGenerations


class DictDriver(Driver):
    """A third-party driver that says nothing about sharing."""

    name = "undeclared"
    blocking = False

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key, MISSING)

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        self.data[key] = blob

    def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    def clear(self, prefix: str = "") -> int:
        return 0

    def keys(self, prefix: str = "") -> list[str]:
        return []


class LocalDictDriver(DictDriver):
    name = "local-dict"
    sharing = PROCESS


class SharedNoStore(DictDriver):
    name = "shared-no-store"
    sharing = NETWORK


class Orphans(LocalDictDriver):
    name = "orphans"
    leaves_orphans = True


@pytest.fixture
def registered() -> Iterator[str]:
    register_driver("shared-dict", "tests.unit.example_shared_driver:SharedDictDriver")  # the one registry line
    yield "shared-dict"
    _REGISTRY.pop("shared-dict", None)
    SERVERS.clear()


@pytest.mark.parametrize("driver", [DictDriver, SharedNoStore])
def test_a_driver_that_may_be_shared_and_brings_no_generation_store_is_refused(driver: type[Driver]) -> None:
    with pytest.raises(ConfigurationError, match="has no generation store: set its class attribute sharing"):
        Cache(driver=driver(), namespace="contract")


def test_a_driver_of_this_process_only_gets_in_process_generations() -> None:
    cache = Cache(driver=LocalDictDriver(), namespace="contract")
    assert type(store_for(cache.driver)) is MemoryGenerations
    cache.set("k", 1)
    assert cache.get("k") == 1


def test_a_refused_tier_refuses_the_tiered_cache() -> None:
    with pytest.raises(ConfigurationError, match="SharedNoStore"):
        Cache(drivers=[MemoryDriver(), SharedNoStore()], namespace="contract")


def test_leaves_orphans_refuses_a_cache_without_ttl() -> None:
    with pytest.raises(ConfigurationError, match="ttl=None on 'orphans'"):
        Cache(driver=Orphans(), namespace="contract", ttl=None)
    Cache(driver=LocalDictDriver(), namespace="contract", ttl=None)  # a bounded or local backend may keep entries


def test_a_new_shared_backend_is_one_module_and_one_registry_line(registered: str) -> None:
    """Two caches on one server (two processes): a write through one is never served stale by the other."""
    one = Cache(driver=registered, namespace="users-app", config={"server": "s1"})
    other = Cache(driver=registered, namespace="users-app", config={"server": "s1"})
    assert isinstance(one.driver, SharedDictDriver)
    assert isinstance(store_for(one.driver), SharedDictGenerations)
    rows = {"u1": "Ada"}

    def make(cache: Cache) -> Any:
        @cached(action="get", namespace=cache, resource="users")
        def get(id: str) -> str:
            return rows[id]

        return get

    read_one, read_other = make(one), make(other)
    assert (read_one("u1"), read_other("u1")) == ("Ada", "Ada")
    assert other.hits == 1  # the entry one stored is on the shared server
    rows["u1"] = "Grace"
    one.invalidate(Invalidation("users", ids=["u1"]))
    assert read_other("u1") == "Grace"
    assert read_one("u1") == "Grace"


def test_every_built_in_driver_declares_its_sharing() -> None:
    expected = {"memory": PROCESS, "null": PROCESS, "filesystem": HOST, "partition-filesystem": HOST,
                "redis": NETWORK, "s3": NETWORK}  # fmt: skip
    for name, sharing in expected.items():
        driver = resolve_driver_class(name)
        assert driver.sharing == sharing, name
        assert driver.leaves_orphans == (name in ("redis", "s3")), name
        brings_store = driver.generation_store is not Driver.generation_store
        assert brings_store == (sharing != PROCESS), name


def test_a_tiered_driver_takes_the_store_of_its_most_shared_tier(tmp_path: Any) -> None:
    from cachekit.drivers.filesystem import FilesystemDriver
    from cachekit.drivers.tiered import TieredDriver
    from cachekit.generations.polled import FilesystemGenerations

    disk = FilesystemDriver(directory=tmp_path / "l2")
    tiered = TieredDriver([MemoryDriver(), disk])
    try:
        assert tiered.sharing == HOST
        assert isinstance(store_for(tiered), FilesystemGenerations)
        assert store_for(tiered) is store_for(disk)
        assert TieredDriver([MemoryDriver(), MemoryDriver()]).sharing == PROCESS
    finally:
        store_for(disk).close()
        tiered.close()
