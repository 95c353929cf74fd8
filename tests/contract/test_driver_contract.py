"""The driver contract (``cachekit/drivers/base.py``), run on every driver, with and without a key prefix."""

from __future__ import annotations

import os

import pytest

from cachekit import MISSING
from cachekit.drivers.base import Driver
from tests.contract.conftest import Harness

ALL_BYTES = bytes(range(256)) * 4


def test_missing_key_is_missing(driver: Driver) -> None:
    assert driver.get("nope") is MISSING
    assert driver.get_with_expiry("nope") is MISSING


def test_set_then_get_returns_the_same_bytes(driver: Driver) -> None:
    driver.set("bin", ALL_BYTES)
    driver.set("empty", b"")
    assert driver.get("bin") == ALL_BYTES
    assert driver.get("empty") == b""


def test_set_replaces_the_old_value(driver: Driver) -> None:
    driver.set("k", b"old")
    driver.set("k", b"new")
    assert driver.get("k") == b"new"
    assert driver.keys() == ["k"]


def test_delete_reports_whether_the_key_was_there(driver: Driver) -> None:
    driver.set("k", b"v")
    assert driver.delete("k") is True
    assert driver.get("k") is MISSING
    assert driver.delete("k") is False


def test_entry_expires_after_its_ttl(harness: Harness) -> None:
    driver = harness.driver
    driver.set("short", b"v", ttl=harness.short_ttl)
    driver.set("forever", b"v", ttl=None)
    assert driver.get("short") == b"v"
    harness.pass_time(harness.short_ttl * 1.5)
    assert driver.get("short") is MISSING
    assert driver.get("forever") == b"v"
    assert driver.keys() == ["forever"]


def test_get_with_expiry_reports_the_deadline(harness: Harness) -> None:
    driver = harness.driver
    before = harness.now()
    driver.set("k", b"v", ttl=100)
    driver.set("n", b"v", ttl=None)
    blob, deadline = driver.get_with_expiry("k")  # type: ignore[misc]
    assert blob == b"v"
    assert deadline is not None
    assert before + 99 <= deadline <= harness.now() + 101
    assert driver.get_with_expiry("n") == (b"v", None)


def test_clear_with_a_prefix_leaves_other_keys(driver: Driver) -> None:
    for key in ("a/1", "a/2", "ab/3", "b/a/4"):
        driver.set(key, b"x")
    assert driver.clear("a/") == 2
    assert sorted(driver.keys()) == ["ab/3", "b/a/4"]


def test_clear_without_prefix_removes_everything(driver: Driver) -> None:
    for key in ("a/1", "b/2", "c"):
        driver.set(key, b"x")
    assert driver.clear() == 3
    assert driver.keys() == []
    assert driver.size() == 0


def test_clear_many_removes_every_listed_prefix_once(driver: Driver) -> None:
    for key in ("ns/resource=users/action=get/1", "ns/resource=users/action=list/2",
                "ns/resource=users_archive/action=list/3", "ns/resource=users/partition=p/r=eu/action=count/4"):
        driver.set(key, b"x")
    removed = driver.clear_many(["ns/resource=users/action=list/", "ns/resource=users/partition=p/r=eu/",
                                 "ns/resource=users/action=list/"])
    assert removed == 2
    assert sorted(driver.keys()) == ["ns/resource=users/action=get/1", "ns/resource=users_archive/action=list/3"]


def test_keys_and_size_list_what_is_stored(driver: Driver) -> None:
    for key in ("x/1", "x/2", "y/1"):
        driver.set(key, b"v")
    assert sorted(driver.keys()) == ["x/1", "x/2", "y/1"]
    assert sorted(driver.keys("x/")) == ["x/1", "x/2"]
    assert driver.size() == 3


def test_batch_operations(driver: Driver) -> None:
    driver.set_many({"m/1": b"one", "m/2": b"two"}, ttl=None)
    assert driver.get_many(["m/1", "missing", "m/2"]) == [b"one", MISSING, b"two"]
    assert driver.delete_many(["m/1", "missing"]) == 1
    assert driver.get("m/1") is MISSING


def test_one_megabyte_value(driver: Driver) -> None:
    big = os.urandom(1 << 20)
    driver.set("big", big)
    assert driver.get("big") == big


@pytest.mark.parametrize("key", ["résumé/ключ/🙂", "ns/resource=users/partition=p/region=eu%2Fwest/action=get/ab"])
def test_keys_are_arbitrary_unicode_paths(driver: Driver, key: str) -> None:
    driver.set(key, b"v")
    assert driver.get(key) == b"v"
    assert driver.keys() == [key]


def test_stats_name_the_driver(driver: Driver) -> None:
    assert driver.stats()["driver"] == driver.name


def test_close_can_be_called_twice(harness: Harness) -> None:
    harness.driver.set("k", b"v")
    harness.driver.close()
    harness.driver.close()
