"""TieredDriver over real drivers: memory, filesystem (diskcache on tmp_path), null, and a driver that fails."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from cachekit._types import MISSING, Missing
from cachekit.breaker import CircuitBreaker
from cachekit.drivers import create_driver
from cachekit.drivers._tier import MAX_PENDING
from cachekit.drivers.base import Driver
from cachekit.drivers.filesystem import FilesystemDriver
from cachekit.drivers.memory import MemoryDriver
from cachekit.drivers.null import NullDriver
from cachekit.drivers.tiered import Tier, TieredDriver
from cachekit.errors import ConfigurationError, DriverError, DriverUnavailable
from tests.conftest import FakeClock


class DownDriver(Driver):
    """A backend that is down: every call raises, as a driver whose server is unreachable does."""

    name = "down"
    sharing = "process"
    blocking = False

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False

    def _fail(self) -> None:
        self.calls += 1
        raise DriverUnavailable("the backend is down")

    def get(self, key: str) -> bytes | Missing:
        self._fail()
        return MISSING

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        self._fail()

    def delete(self, key: str) -> bool:
        self._fail()
        return False

    def clear(self, prefix: str = "") -> int:
        self._fail()
        return 0

    def keys(self, prefix: str = "") -> list[str]:
        self._fail()
        return []

    def stats(self) -> dict[str, object]:
        self._fail()
        return {}

    def close(self) -> None:
        self.closed = True


class DictDriver(Driver):
    """A minimal blob store that cannot tell deadlines (``get_with_expiry`` gives ``None``)."""

    name = "dict"
    sharing = "process"
    blocking = False

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.ttls: dict[str, float | None] = {}

    def get(self, key: str) -> bytes | Missing:
        return self.data.get(key, MISSING)

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        self.data[key] = blob
        self.ttls[key] = ttl

    def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    def clear(self, prefix: str = "") -> int:
        doomed = [key for key in self.data if key.startswith(prefix)]
        for key in doomed:
            del self.data[key]
        return len(doomed)

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(key for key in self.data if key.startswith(prefix))


@pytest.fixture
def memory(clock: FakeClock) -> MemoryDriver:
    return MemoryDriver(max_size=100, clock=clock)


@pytest.fixture
def disk(tmp_path: Path, clock: FakeClock) -> Iterator[FilesystemDriver]:
    driver = FilesystemDriver(directory=tmp_path / "l2", clock=clock)
    yield driver
    driver.close()


@pytest.fixture
def tiered(memory: MemoryDriver, disk: FilesystemDriver, clock: FakeClock) -> TieredDriver:
    return TieredDriver([Tier(memory), Tier(disk)], clock=clock)


def tier_stats(driver: TieredDriver, index: int) -> dict[str, object]:
    return dict(driver.stats()["tiers"][index])


# -- reads and promotion --------------------------------------------------------------------------------------


def test_promotion_copies_the_remaining_ttl_not_a_fresh_one(
    tiered: TieredDriver, memory: MemoryDriver, disk: FilesystemDriver, clock: FakeClock
) -> None:
    disk.set("k", b"v", ttl=100)
    clock.advance(60)
    assert tiered.get("k") == b"v"
    assert memory.get_with_expiry("k") == (b"v", clock.now + 40)
    assert tier_stats(tiered, 0)["promotions"] == 1
    clock.advance(39)
    assert memory.get("k") == b"v"
    clock.advance(2)  # 41 s after the read: the promoted copy is gone with the original
    assert memory.get("k") is MISSING
    assert tiered.get("k") is MISSING


def test_promotion_is_bounded_by_the_faster_tiers_ttl(
    memory: MemoryDriver, disk: FilesystemDriver, clock: FakeClock
) -> None:
    driver = TieredDriver([Tier(memory, ttl=10), Tier(disk)], clock=clock)
    disk.set("k", b"v", ttl=100)
    assert driver.get("k") == b"v"
    assert memory.get_with_expiry("k") == (b"v", clock.now + 10)


def test_promotion_from_a_tier_that_cannot_tell_deadlines_uses_its_ttl(
    memory: MemoryDriver, clock: FakeClock
) -> None:
    slow = DictDriver()
    driver = TieredDriver([Tier(memory), Tier(slow, ttl=30)], clock=clock)
    slow.set("k", b"v")
    assert driver.get("k") == b"v"
    assert memory.get_with_expiry("k") == (b"v", clock.now + 30)


def test_an_entry_found_at_its_deadline_is_not_promoted(clock: FakeClock) -> None:
    class Stale(DictDriver):
        def get_with_expiry(self, key: str) -> tuple[bytes, float | None] | Missing:
            return b"v", clock.now  # what a tier whose clock lags would report

    fast = DictDriver()
    driver = TieredDriver([Tier(fast), Tier(Stale())], clock=clock)
    assert driver.get("k") == b"v"
    assert fast.data == {}


def test_no_promotion_without_promote_on_hit(memory: MemoryDriver, disk: FilesystemDriver, clock: FakeClock) -> None:
    driver = TieredDriver([memory, disk], promote_on_hit=False, clock=clock)
    disk.set("k", b"v", ttl=100)
    assert driver.get("k") == b"v"
    assert memory.get("k") is MISSING
    assert tier_stats(driver, 1)["hits"] == 1


def test_hits_and_misses_are_counted_per_tier(tiered: TieredDriver, disk: FilesystemDriver) -> None:
    disk.set("in-l2", b"v")
    assert tiered.get("in-l2") == b"v"  # L1 miss, L2 hit, promoted
    assert tiered.get("in-l2") == b"v"  # L1 hit
    assert tiered.get("nowhere") is MISSING
    stats = tiered.stats()
    assert [(t["hits"], t["misses"]) for t in stats["tiers"]] == [(1, 2), (1, 1)]
    assert stats["totals"]["hits"] == 2
    assert stats["totals"]["misses"] == 1
    assert stats["totals"]["hit_rate"] == pytest.approx(2 / 3)


def test_get_many_falls_through_and_promotes(
    tiered: TieredDriver, memory: MemoryDriver, disk: FilesystemDriver, clock: FakeClock
) -> None:
    memory.set("a", b"A")
    disk.set("b", b"B", ttl=50)
    clock.advance(20)
    assert tiered.get_many(["a", "b", "c"]) == [b"A", b"B", MISSING]
    assert memory.get_with_expiry("b") == (b"B", clock.now + 30)
    assert tiered.stats()["totals"]["misses"] == 1


def test_get_many_without_promotion_batches_each_tier(
    memory: MemoryDriver, disk: FilesystemDriver, clock: FakeClock
) -> None:
    driver = TieredDriver([memory, disk], promote_on_hit=False, clock=clock)
    disk.set_many({"b": b"B", "c": b"C"})
    memory.set("a", b"A")
    assert driver.get_many(["a", "b", "c", "d"]) == [b"A", b"B", b"C", MISSING]
    assert memory.keys() == ["a"]


# -- writes and strategies ------------------------------------------------------------------------------------


def test_write_through_writes_every_tier_within_its_ttl(
    memory: MemoryDriver, disk: FilesystemDriver, clock: FakeClock
) -> None:
    driver = TieredDriver([Tier(memory, ttl=10), Tier(disk, ttl=3600)], clock=clock)
    driver.set("k", b"v", ttl=100)
    assert memory.get_with_expiry("k") == (b"v", clock.now + 10)
    assert disk.get_with_expiry("k") == (b"v", clock.now + 100)
    driver.set("forever", b"v")
    assert memory.get_with_expiry("forever") == (b"v", clock.now + 10)
    assert disk.get_with_expiry("forever") == (b"v", clock.now + 3600)
    driver.set_many({"x": b"1", "y": b"2"}, ttl=5)
    assert disk.get_with_expiry("x") == (b"1", clock.now + 5)
    assert [t["sets"] for t in driver.stats()["tiers"]] == [4, 4]
    clock.advance(10)
    assert driver.get("k") == b"v"  # gone from L1, served by L2 with 90 s left
    assert memory.get_with_expiry("k") == (b"v", clock.now + 10)


def test_lazy_promotion_writes_the_first_tier_and_fills_it_from_the_others(
    memory: MemoryDriver, disk: FilesystemDriver, clock: FakeClock
) -> None:
    driver = TieredDriver([memory, disk], strategy=" Lazy-Promotion ", clock=clock)
    assert driver.strategy == "lazy-promotion"
    driver.set("mine", b"local")
    driver.set_many({"batch": b"local"})
    assert (sorted(memory.keys()), disk.keys()) == (["batch", "mine"], [])
    disk.set("shared", b"written by another process", ttl=60)
    clock.advance(15)
    assert driver.get("shared") == b"written by another process"
    assert memory.get_with_expiry("shared") == (b"written by another process", clock.now + 45)


# -- failures -------------------------------------------------------------------------------------------------


def test_a_failing_tier_is_skipped_and_counted(disk: FilesystemDriver, clock: FakeClock) -> None:
    down = DownDriver()
    driver = TieredDriver([down, disk], clock=clock)
    driver.set("k", b"v", ttl=60)
    assert disk.get("k") == b"v"
    assert driver.get("k") == b"v"  # L1 raises, L2 serves; the promotion into L1 fails too
    assert driver.get_many(["k", "other"]) == [b"v", MISSING]
    assert driver.keys() == ["k"]
    stats = driver.stats()
    assert stats["tiers"][0]["name"] == "L1-down"
    assert stats["tiers"][0]["errors"] >= 1
    assert stats["tiers"][0]["errors"] + stats["tiers"][0]["skipped"] >= 5
    assert stats["tiers"][0]["breaker"]["state"] == "open"  # unreachable: skipped without being called
    assert down.calls == 2  # the first set and stats(); every other call was skipped
    assert stats["tiers"][0]["driver_stats"] == {"error": "DriverUnavailable: the backend is down"}
    assert stats["tiers"][1]["errors"] == 0
    assert stats["tiers"][1]["sets"] == 1


def test_every_tier_failing_raises_driver_error() -> None:
    driver = TieredDriver([DownDriver(), DownDriver()])
    for call in (
        lambda: driver.get("k"),
        lambda: driver.get_many(["k"]),
        lambda: driver.set("k", b"v"),
        lambda: driver.set_many({"k": b"v"}),
        driver.keys,
        driver.size,
    ):
        with pytest.raises(DriverError, match="every tier") as caught:
            call()
        assert isinstance(caught.value.__cause__, DriverUnavailable)


def test_lazy_promotion_raises_when_its_only_write_target_fails(disk: FilesystemDriver) -> None:
    driver = TieredDriver([DownDriver(), disk], strategy="lazy-promotion")
    with pytest.raises(DriverError, match="every tier"):
        driver.set("k", b"v")
    assert disk.keys() == []


class SwitchableDriver(MemoryDriver):
    """A memory driver that can be taken down (every call raises DriverUnavailable) and brought back."""

    def __init__(self) -> None:
        super().__init__(max_size=None)
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise DriverUnavailable("switched off")

    def get_with_expiry(self, key: str) -> tuple[bytes, float | None] | Missing:
        self._check()
        return super().get_with_expiry(key)

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        self._check()
        super().set(key, blob, ttl)

    def delete(self, key: str) -> bool:
        self._check()
        return super().delete(key)

    def clear(self, prefix: str = "") -> int:
        self._check()
        return super().clear(prefix)

    def clear_many(self, prefixes: Iterable[str]) -> int:
        self._check()
        return super().clear_many(prefixes)

    def delete_many(self, keys: Iterable[str]) -> int:
        self._check()
        return super().delete_many(keys)


def test_a_tier_that_misses_an_invalidation_is_quarantined_until_it_is_replayed(memory: MemoryDriver) -> None:
    ticks = FakeClock(0.0)
    l2 = SwitchableDriver()
    driver = TieredDriver([memory, Tier(l2, breaker=CircuitBreaker("l2", cooldown=1.0, clock=ticks))])
    driver.set_many({"users/1": b"v1", "users/2": b"v2", "orders/1": b"o1"})
    l2.down = True
    # L1 applied it, L2 missed it: no error (L2 cannot serve what it missed), L2 quarantined.
    assert driver.delete("users/1") is True
    driver.clear("orders/")
    l2.down = False  # back, but the breaker is still open: nothing is sent to it yet
    assert driver.get("users/1") is MISSING
    assert driver.get("orders/1") is MISSING
    tier = driver.stats()["tiers"][1]
    assert (tier["pending_invalidations"], tier["in_service"], tier["breaker"]["state"]) == (2, False, "open")
    assert l2.get("users/1") == b"v1"  # still stale in L2 ...
    assert driver.get("users/2") == b"v2"  # ... while L1 keeps serving
    ticks.advance(1.0)  # cool-down over: the next access replays the queue, then reads L2 again
    memory.clear()
    assert driver.get("users/1") is MISSING
    assert l2.get("users/1") is MISSING
    assert l2.get("orders/1") is MISSING
    assert driver.get("users/2") == b"v2"
    tier = driver.stats()["tiers"][1]
    assert (tier["pending_invalidations"], tier["in_service"], tier["hits"]) == (0, True, 1)


def test_missed_invalidations_are_bounded_by_collapsing_into_a_common_prefix(memory: MemoryDriver) -> None:
    ticks = FakeClock(0.0)
    l2 = SwitchableDriver()
    driver = TieredDriver([memory, Tier(l2, breaker=CircuitBreaker("l2", cooldown=1.0, clock=ticks))])
    l2.set("ns/resource=users/keep", b"x")
    l2.set("other/key", b"y")
    l2.down = True
    for i in range(MAX_PENDING + 50):
        driver.clear(f"ns/resource=users/item={i}/")
    assert driver.stats()["tiers"][1]["pending_invalidations"] == 1
    l2.down = False
    ticks.advance(1.0)
    driver.get("anything")
    assert l2.keys() == ["other/key"]  # the collapsed prefix ns/resource=users/ was cleared, nothing else


def test_an_invalidation_no_tier_applied_raises() -> None:
    driver = TieredDriver([DownDriver(), DownDriver()])
    with pytest.raises(DriverError, match="failed on every tier"):
        driver.delete("k")
    with pytest.raises(DriverError, match="queued"):
        driver.clear("users/")


def test_a_configuration_error_is_not_a_tier_failure(tiered: TieredDriver) -> None:
    with pytest.raises(ConfigurationError):
        tiered.get("")
    assert tiered.stats()["totals"]["errors"] == 0


# -- invalidation, listing, lifecycle -------------------------------------------------------------------------


def test_clear_prefix_leaves_other_prefixes_in_every_tier(
    tiered: TieredDriver, memory: MemoryDriver, disk: FilesystemDriver
) -> None:
    tiered.set_many({"users/1": b"v", "users/2": b"v", "users_archive/1": b"v"})
    disk.set("users/3", b"only in L2")
    assert tiered.clear("users/") == 3  # the largest per-tier count
    assert memory.keys() == disk.keys() == ["users_archive/1"]
    assert tiered.delete("users_archive/1") is True
    assert tiered.delete("users_archive/1") is False


def test_keys_are_the_union_and_size_counts_each_key_once(
    tiered: TieredDriver, memory: MemoryDriver, disk: FilesystemDriver
) -> None:
    tiered.set("both", b"v")
    memory.set("l1-only", b"v")
    disk.set("l2-only", b"v")
    assert tiered.keys() == ["both", "l1-only", "l2-only"]
    assert tiered.keys("l") == ["l1-only", "l2-only"]
    assert tiered.size() == 3


def test_null_tier_never_holds_anything(disk: FilesystemDriver) -> None:
    driver = TieredDriver([NullDriver(), disk])
    driver.set("k", b"v")
    assert driver.get("k") == b"v"
    assert tier_stats(driver, 0)["misses"] == 1


def test_close_closes_every_tier_even_after_a_failure(disk: FilesystemDriver) -> None:
    class BadClose(DictDriver):
        def close(self) -> None:
            raise OSError("cannot close")

    down = DownDriver()
    driver = TieredDriver([BadClose(), down, disk])
    with pytest.raises(DriverError, match="close"):
        driver.close()
    assert down.closed
    with pytest.raises(DriverError, match="closed"):
        disk.get("k")


def test_blocking_when_any_tier_blocks(memory: MemoryDriver, disk: FilesystemDriver) -> None:
    assert TieredDriver([memory, NullDriver()]).blocking is False
    assert TieredDriver([memory, disk]).blocking is True


def test_stats_shape(tiered: TieredDriver) -> None:
    tiered.set("k", b"v")
    stats = tiered.stats()
    assert (stats["driver"], stats["strategy"], stats["promote_on_hit"]) == ("tiered", "write-through", True)
    assert [t["name"] for t in stats["tiers"]] == ["L1-memory", "L2-filesystem"]
    assert set(stats["tiers"][0]) >= {"name", "hits", "misses", "errors", "sets", "promotions", "hit_rate",
                                      "driver_stats"}
    assert stats["tiers"][1]["driver_stats"]["entries"] == 1
    assert stats["totals"]["sets"] == 2


def test_tier_names_and_ttls(memory: MemoryDriver, disk: FilesystemDriver) -> None:
    from datetime import timedelta

    driver = TieredDriver([Tier(memory, ttl=timedelta(minutes=1)), Tier(disk, name="shared-disk")])
    assert [(t.name, t.ttl) for t in driver.tiers] == [("L1-memory", 60.0), ("shared-disk", None)]


def test_registry_name(disk: FilesystemDriver) -> None:
    driver = create_driver("tiered", tiers=[Tier(disk, ttl=5)])
    assert isinstance(driver, TieredDriver)
    assert driver.tiers[0].driver is disk


# -- options --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "options", "match"),
    [
        ((), {}, "needs a list of tiers"),
        (([],), {}, "at least one tier"),
        (("memory",), {}, "needs a list of tiers"),
        (([object()],), {}, r"tiers\[0\] must be a Tier or a Driver"),
        (([Tier(NullDriver(), ttl=-1)],), {}, r"tiers\[0\].ttl"),
        (([Tier(NullDriver(), name="")],), {}, "name"),
        (([NullDriver()],), {"strategy": "write-behind"}, "'write-through', 'lazy-promotion'"),
        (([NullDriver()],), {"promote_on_hit": "yes"}, "promote_on_hit"),
        (([NullDriver()],), {"clock": 1}, "clock"),
        (([NullDriver()],), {"fallback_on_error": True}, "fallback_on_error"),
        (([MemoryDriver(store="objects")],), {}, "stores live objects"),
    ],
)
def test_bad_options_are_configuration_errors(args: tuple[object, ...], options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        TieredDriver(*args, **options)  # type: ignore[arg-type]
