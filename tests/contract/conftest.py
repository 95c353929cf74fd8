"""The ``driver`` fixture: every driver, each with and without a key prefix, on real backends.

A :class:`Harness` wraps the driver with what a test needs to make time pass: drivers that take an injected
clock are advanced instantly; Redis owns its expiry, so its tests wait a short real TTL.
"""

from __future__ import annotations

import contextlib
import gc
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cachekit.drivers.base import Driver
from tests.conftest import FakeClock

DRIVERS = [
    "memory",
    "filesystem",
    "partition-filesystem",
    "redis",
    "redis-cluster",
    "s3",
    "tiered",
]
KEY_PREFIXES = {"no-prefix": "", "prefix": "kp-test/"}


@dataclass
class Harness:
    driver: Driver
    clock: FakeClock
    real_time: bool  # True when the backend expires entries on its own clock (Redis)

    @property
    def short_ttl(self) -> float:
        return 0.3 if self.real_time else 10.0

    def pass_time(self, seconds: float) -> None:
        if self.real_time:
            time.sleep(seconds)
        else:
            self.clock.advance(seconds)

    def now(self) -> float:
        return time.time() if self.real_time else self.clock()


def _build(name: str, prefix: str, clock: FakeClock, tmp: Path, fixture: Callable[[str], Any]) -> Harness:
    if name == "memory":
        from cachekit.drivers.memory import MemoryDriver

        return Harness(MemoryDriver(key_prefix=prefix, clock=clock, max_size=None), clock, False)
    if name == "filesystem":
        from cachekit.drivers.filesystem import FilesystemDriver

        return Harness(FilesystemDriver(directory=tmp / "fs", key_prefix=prefix, clock=clock), clock, False)
    if name == "partition-filesystem":
        from cachekit.drivers.partition_filesystem import PartitionAwareFilesystemCache

        driver = PartitionAwareFilesystemCache(directory=tmp / "pfs", key_prefix=prefix, clock=clock)
        return Harness(driver, clock, False)
    if name == "redis":
        from cachekit.drivers.redis import RedisDriver

        url, base = fixture("redis_url"), fixture("redis_prefix")
        return Harness(RedisDriver(url=url, key_prefix=base + prefix), clock, True)
    if name == "redis-cluster":
        from cachekit.drivers.redis import RedisDriver

        url, base = fixture("redis_cluster_url"), fixture("redis_prefix")
        return Harness(RedisDriver(url=url, key_prefix=base + prefix), clock, True)
    if name == "s3":
        from cachekit.drivers.s3 import S3Driver

        driver = S3Driver(
            bucket=fixture("s3_bucket"), client=fixture("s3_client"), key_prefix=prefix or "cache/", clock=clock
        )
        return Harness(driver, clock, False)
    if name == "tiered":
        from cachekit.drivers.filesystem import FilesystemDriver
        from cachekit.drivers.memory import MemoryDriver
        from cachekit.drivers.tiered import Tier, TieredDriver

        tiers = [
            Tier(MemoryDriver(key_prefix=prefix, clock=clock, max_size=None)),
            Tier(FilesystemDriver(directory=tmp / "tier2", key_prefix=prefix, clock=clock)),
        ]
        return Harness(TieredDriver(tiers, clock=clock), clock, False)
    raise AssertionError(f"unknown driver {name}")


@pytest.fixture(params=DRIVERS)
def driver_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=list(KEY_PREFIXES), ids=list(KEY_PREFIXES))
def key_prefix(request: pytest.FixtureRequest) -> str:
    return KEY_PREFIXES[str(request.param)]


@pytest.fixture
def harness(
    request: pytest.FixtureRequest, driver_name: str, key_prefix: str, clock: FakeClock, tmp_path: Path
) -> Iterator[Harness]:
    built = _build(driver_name, key_prefix, clock, tmp_path, request.getfixturevalue)
    yield built
    # Redis keys go with redis_prefix and S3 with its bucket; this only tidies drivers still open.
    with contextlib.suppress(Exception):
        built.driver.clear()
    built.driver.close()
    if driver_name.startswith("redis-cluster"):
        # redis-py's async cluster client orphans a connection when it loses its writer (a known flake of the
        # 50-wide burst): collect it here, where its ResourceWarning is expected, not in a later test's teardown.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


@pytest.fixture
def driver(harness: Harness) -> Driver:
    return harness.driver
