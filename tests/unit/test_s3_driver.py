"""S3Driver against moto's S3 server over a real socket (the session `moto_server` fixture)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from cachekit._types import MISSING
from cachekit.drivers import create_driver
from cachekit.drivers.s3 import EXPIRES_AT_METADATA, S3Driver
from cachekit.errors import ConfigurationError, DriverError, DriverUnavailable
from tests.conftest import FakeClock
from tests.servers import MotoServer, free_port

pytestmark = pytest.mark.s3

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
#: Fast-failing client options for a dead endpoint: one attempt, short timeouts.
FAST_FAIL = {"connect_timeout": 0.5, "read_timeout": 0.5, "max_attempts": 1}


@pytest.fixture
def make_driver(s3_client: Any, s3_bucket: str, clock: FakeClock) -> Iterator[Callable[..., S3Driver]]:
    """Build drivers on the test's bucket with the shared client; closes them afterwards."""
    drivers: list[S3Driver] = []

    def make(**options: Any) -> S3Driver:
        options = {"bucket": s3_bucket, "client": s3_client, "clock": clock, **options}
        driver = S3Driver(**options)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.close()


@pytest.fixture
def driver(make_driver: Callable[..., S3Driver]) -> S3Driver:
    return make_driver()


def bucket_keys(s3_client: Any, bucket: str) -> list[str]:
    """Every object key in the bucket, read directly (not through the driver)."""
    paginator = s3_client.get_paginator("list_objects_v2")
    pages = paginator.paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))


def put_raw(s3_client: Any, bucket: str, keys: list[str]) -> None:
    """Create objects quickly (boto3 clients are thread-safe; botocore pools 10 connections)."""
    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda key: s3_client.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))


def count_delete_batches(s3_client: Any) -> list[int]:
    """Record the size of every DeleteObjects request the client sends (botocore's event hooks, no mock)."""
    sizes: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params["Delete"]["Objects"]))

    s3_client.meta.events.register("provide-client-params.s3.DeleteObjects", record)
    return sizes


# -- single entries ------------------------------------------------------------------------------------------


def test_set_get_delete_round_trip(driver: S3Driver, s3_client: Any, s3_bucket: str) -> None:
    assert driver.get("users/1") is MISSING
    driver.set("users/1", b"alice")
    assert driver.get("users/1") == b"alice"
    assert bucket_keys(s3_client, s3_bucket) == ["cache/users/1"]
    driver.set("users/1", b"bob")
    assert driver.get("users/1") == b"bob"
    assert driver.delete("users/1") is True
    assert driver.delete("users/1") is False
    assert driver.get("users/1") is MISSING
    assert bucket_keys(s3_client, s3_bucket) == []


def test_values_are_binary_safe_and_large(driver: S3Driver) -> None:
    every_byte = bytes(range(256)) * 4 + b"\x00\r\n\x00"
    big = os.urandom(1 << 20)
    driver.set("binary", every_byte)
    driver.set("big", big)
    driver.set("empty", b"")
    assert driver.get("binary") == every_byte
    assert driver.get("big") == big
    assert driver.get("empty") == b""


def test_unicode_and_path_like_keys(driver: S3Driver) -> None:
    key = "ns/resource=users/partition=by_region/region=é ü/action=get/9f86d081884c7d65"
    driver.set(key, b"v")
    assert driver.get(key) == b"v"
    assert driver.keys("ns/resource=users/") == [key]


def test_get_many_keeps_order_and_misses(driver: S3Driver) -> None:
    driver.set_many({"a": b"1", "c": b"3"})
    assert driver.get_many(["c", "b", "a"]) == [b"3", MISSING, b"1"]


def test_invalid_keys_are_rejected(driver: S3Driver) -> None:
    with pytest.raises(ConfigurationError, match="non-empty"):
        driver.get("")
    with pytest.raises(ConfigurationError, match="non-empty"):
        driver.set(None, b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        driver.set("k", 5)  # type: ignore[arg-type]
    driver.set("view", memoryview(b"abc"))
    assert driver.get("view") == b"abc"


# -- expiry --------------------------------------------------------------------------------------------------


def test_ttl_is_stored_as_object_metadata(driver: S3Driver, s3_client: Any, s3_bucket: str,
                                          clock: FakeClock) -> None:
    driver.set("k", b"v", ttl=10)
    head = s3_client.head_object(Bucket=s3_bucket, Key="cache/k")
    assert float(head["Metadata"][EXPIRES_AT_METADATA]) == clock() + 10
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-meta-cachekit-expires-at"]
    driver.set("forever", b"v")
    assert EXPIRES_AT_METADATA not in s3_client.head_object(Bucket=s3_bucket, Key="cache/forever")["Metadata"]


def test_expired_object_is_a_miss_and_is_deleted(driver: S3Driver, s3_client: Any, s3_bucket: str,
                                                 clock: FakeClock) -> None:
    driver.set("k", b"v", ttl=10)
    driver.set("forever", b"f")
    clock.advance(9)
    assert driver.get("k") == b"v"
    clock.advance(2)
    assert driver.get("k") is MISSING
    assert bucket_keys(s3_client, s3_bucket) == ["cache/forever"]
    clock.advance(10_000)
    assert driver.get("forever") == b"f"


def test_get_with_expiry_returns_the_deadline(driver: S3Driver, clock: FakeClock) -> None:
    driver.set("k", b"v", ttl=timedelta(seconds=30))
    driver.set("forever", b"f", ttl=None)
    assert driver.get_with_expiry("k") == (b"v", clock() + 30)
    assert driver.get_with_expiry("forever") == (b"f", None)
    assert driver.get_with_expiry("absent") is MISSING
    clock.advance(31)
    assert driver.get_with_expiry("k") is MISSING


def test_delete_of_an_expired_entry_reports_absent_and_removes_it(
    driver: S3Driver, s3_client: Any, s3_bucket: str, clock: FakeClock
) -> None:
    driver.set("k", b"v", ttl=1)
    clock.advance(2)
    assert driver.delete("k") is False
    assert bucket_keys(s3_client, s3_bucket) == []


def test_bad_ttl_is_rejected(driver: S3Driver) -> None:
    with pytest.raises(ConfigurationError, match="ttl"):
        driver.set("k", b"v", ttl=-1)


def test_metadata_written_by_someone_else_means_no_expiry(driver: S3Driver, s3_client: Any,
                                                          s3_bucket: str) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="cache/k", Body=b"v", Metadata={EXPIRES_AT_METADATA: "soon"})
    assert driver.get_with_expiry("k") == (b"v", None)


# -- clear, keys, size ---------------------------------------------------------------------------------------


def test_clear_prefix_leaves_other_prefixes(driver: S3Driver, s3_client: Any, s3_bucket: str) -> None:
    for key in ("users/1", "users/2", "users_archive/1", "orders/1"):
        driver.set(key, b"v")
    assert driver.clear("users/") == 2
    assert sorted(driver.keys()) == ["orders/1", "users_archive/1"]
    assert driver.clear("nothing/") == 0
    assert driver.clear() == 2
    assert bucket_keys(s3_client, s3_bucket) == []


def test_key_prefix_behaves_as_a_folder(make_driver: Callable[..., S3Driver], s3_client: Any,
                                        s3_bucket: str) -> None:
    """The original cleared "cache-l2/..." when clearing keyPrefix "cache"; a prefix is a folder here."""
    cache = make_driver(key_prefix="cache")
    l2 = make_driver(key_prefix="cache-l2/")
    assert cache.key_prefix == "cache/"
    s3_client.put_object(Bucket=s3_bucket, Key="cachefile", Body=b"not ours")
    cache.set("users/1", b"a")
    l2.set("users/1", b"b")
    assert cache.keys() == ["users/1"]
    assert cache.size() == 1
    assert cache.clear() == 1
    assert cache.clear_many(["users/", "orders/"]) == 0
    assert bucket_keys(s3_client, s3_bucket) == ["cache-l2/users/1", "cachefile"]
    assert l2.get("users/1") == b"b"


def test_empty_key_prefix_uses_the_whole_bucket(make_driver: Callable[..., S3Driver], s3_client: Any,
                                                s3_bucket: str) -> None:
    whole = make_driver(key_prefix="")
    s3_client.put_object(Bucket=s3_bucket, Key="raw", Body=b"r")
    whole.set("k", b"v")
    assert sorted(whole.keys()) == ["k", "raw"]
    assert whole.get("raw") == b"r"


def test_clear_many_deletes_only_matching_keys(driver: S3Driver) -> None:
    keys = ["ns/users/1", "ns/users/2/x", "ns/users_archive/1", "ns/orders/1", "ns/orders/2", "other/1", "x"]
    for key in keys:
        driver.set(key, b"v")
    # Shared prefix "ns/": one listing; "ns/users/2/" is inside "ns/users/" and counted once.
    assert driver.clear_many(["ns/users/", "ns/users/2/", "ns/orders/1"]) == 3
    assert sorted(driver.keys()) == ["ns/orders/2", "ns/users_archive/1", "other/1", "x"]
    # No shared prefix: one listing each.
    assert driver.clear_many(["other/", "x", ""]) == 2
    assert sorted(driver.keys()) == ["ns/orders/2", "ns/users_archive/1"]
    assert driver.clear_many([]) == 0


def test_delete_many_counts_present_keys(driver: S3Driver, s3_client: Any, s3_bucket: str,
                                         clock: FakeClock) -> None:
    driver.set("a", b"1")
    driver.set("b", b"2")
    driver.set("old", b"3", ttl=1)
    driver.set("keep", b"4")
    clock.advance(2)
    assert driver.delete_many(["a", "b", "a", "absent", "old"]) == 2
    assert bucket_keys(s3_client, s3_bucket) == ["cache/keep", "cache/old"]
    assert driver.delete_many([]) == 0


def test_keys_and_size(driver: S3Driver) -> None:
    assert driver.keys() == []
    assert driver.size() == 0
    for key in ("a/1", "a/2", "b/1"):
        driver.set(key, b"v")
    assert sorted(driver.keys()) == ["a/1", "a/2", "b/1"]
    assert sorted(driver.keys("a/")) == ["a/1", "a/2"]
    assert driver.keys("zzz") == []
    assert driver.size() == 3


@pytest.mark.slow
def test_clear_deletes_more_than_one_batch(driver: S3Driver, s3_client: Any, s3_bucket: str) -> None:
    """1100 objects: listing pages and DeleteObjects batches are both capped at 1000."""
    put_raw(s3_client, s3_bucket, [f"cache/bulk/{i:04d}" for i in range(1100)] + ["cache/bulkhead", "bulk/0"])
    assert driver.size() == 1101
    assert len(driver.keys("bulk/")) == 1100
    batches = count_delete_batches(s3_client)
    assert driver.clear("bulk/") == 1100
    assert batches == [1000, 100]  # S3 rejects more than 1000 keys a request (moto does not)
    assert bucket_keys(s3_client, s3_bucket) == ["bulk/0", "cache/bulkhead"]


@pytest.mark.slow
def test_clear_many_deletes_more_than_one_batch(driver: S3Driver, s3_client: Any, s3_bucket: str) -> None:
    put_raw(s3_client, s3_bucket, [f"cache/ns/a/{i:04d}" for i in range(600)]
            + [f"cache/ns/b/{i:04d}" for i in range(600)] + ["cache/ns/c/0"])
    batches = count_delete_batches(s3_client)
    assert driver.clear_many(["ns/a/", "ns/b/"]) == 1200
    assert batches == [1000, 200]
    assert driver.keys() == ["ns/c/0"]


# -- clients, configuration, stats ---------------------------------------------------------------------------


def test_given_client_is_used_and_left_open(s3_client: Any, s3_bucket: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[bool] = []
    monkeypatch.setattr(s3_client, "close", lambda: closed.append(True))
    driver = S3Driver(bucket=s3_bucket, client=s3_client)
    assert driver.client is s3_client
    driver.set("k", b"v")
    driver.close()
    assert closed == []
    assert s3_client.get_object(Bucket=s3_bucket, Key="cache/k")["Body"].read() == b"v"


def test_client_built_from_endpoint_and_credentials(moto_server: MotoServer, s3_client: Any, s3_bucket: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    driver = S3Driver(bucket=s3_bucket, endpoint_url=moto_server.endpoint_url, region="eu-west-1",
                      connect_timeout=1.5, read_timeout=2.5, max_attempts=3, **CREDENTIALS)
    client = driver.client
    assert driver.client is client
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.connect_timeout == 1.5
    assert client.meta.config.read_timeout == 2.5
    assert client.meta.config.retries["total_max_attempts"] == 3
    driver.set("k", b"v")
    assert s3_client.get_object(Bucket=s3_bucket, Key="cache/k")["Body"].read() == b"v"

    real_close = client.close
    closed: list[bool] = []
    monkeypatch.setattr(client, "close", lambda: (closed.append(True), real_close()))
    driver.close()
    driver.close()
    assert closed == [True]
    with pytest.raises(DriverError, match="closed"):
        driver.get("k")


def test_registry_name_and_stats(moto_server: MotoServer, s3_bucket: str) -> None:
    driver = create_driver("s3", bucket=s3_bucket, endpoint_url=moto_server.endpoint_url, region="us-east-1",
                           aws_access_key_id="AKIDSECRETLOOKING", aws_secret_access_key="very-secret")
    assert isinstance(driver, S3Driver)
    assert driver.name == "s3"
    assert driver.blocking is True
    stats = driver.stats()
    assert stats.pop("breaker")["state"] == "closed"
    assert stats == {"driver": "s3", "bucket": s3_bucket, "key_prefix": "cache/",
                     "endpoint_url": moto_server.endpoint_url}
    assert "secret" not in repr(stats).lower()
    assert "secret" not in repr(driver).lower()
    driver.close()


def test_stats_show_a_given_clients_endpoint(driver: S3Driver, moto_server: MotoServer) -> None:
    assert driver.stats()["endpoint_url"] == moto_server.endpoint_url


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bucket": ""}, "bucket"),
        ({"bucket": None}, "bucket"),
        ({"bucket": "a/b"}, "bare bucket name"),
        ({"key_prefix": 5}, "key_prefix"),
        ({"max_bytes": 1 << 20}, "lifecycle"),
        ({"ttl": 10, "colour": "red"}, r"options 'colour', 'ttl'; accepted options: "),
        ({"read_timout": 1}, r"'read_timout' \(did you mean 'read_timeout'\?\)"),
        ({"breaker_failures": True}, "breaker_failures must be an int"),
        ({"aws_access_key_id": "only-the-id"}, "both"),
        ({"aws_session_token": "tok"}, "aws_session_token"),
        ({"endpoint_url": "127.0.0.1:9000"}, "http://"),
        ({"endpoint_url": ""}, "endpoint_url"),
        ({"region": 3}, "region"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"read_timeout": True}, "read_timeout"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"clock": 123}, "clock"),
    ],
)
def test_bad_configuration_is_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        S3Driver(**{"bucket": "b-1", **options})


def test_client_options_conflict_with_a_given_client(s3_client: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"\['endpoint_url', 'read_timeout'\].*client="):
        S3Driver(bucket="b-1", client=s3_client, endpoint_url="http://127.0.0.1:1", read_timeout=1)


def test_bucket_is_required() -> None:
    with pytest.raises(TypeError, match="bucket"):
        S3Driver()  # type: ignore[call-arg]


# -- failures ------------------------------------------------------------------------------------------------


def test_construction_needs_no_network_and_calls_fail_fast() -> None:
    """An app boots with S3 down; each call then raises DriverUnavailable quickly."""
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    driver = S3Driver(bucket="down-bucket", endpoint_url=endpoint, **CREDENTIALS, **FAST_FAIL)
    calls: list[Callable[[], object]] = [
        lambda: driver.get("k"), lambda: driver.set("k", b"v"), lambda: driver.delete("k"),
        lambda: driver.clear("p/"), driver.keys, driver.size,
        lambda: driver.delete_many(["k"]), lambda: driver.clear_many(["a/", "b/"]),
    ]
    for call in calls:
        with pytest.raises(DriverUnavailable, match="cannot reach S3") as info:
            call()
        assert isinstance(info.value, ConnectionError)
        assert type(info.value.__cause__).__module__.startswith("botocore")
        driver.breaker.reset()  # each call reaches the dead endpoint, not the open breaker
    assert time.monotonic() - started < 5
    driver.close()


def test_missing_bucket_is_a_driver_error_naming_the_code(s3_client: Any) -> None:
    driver = S3Driver(bucket="cachekit-test-no-such-bucket", client=s3_client)
    with pytest.raises(DriverError, match="NoSuchBucket") as info:
        driver.get("k")
    assert not isinstance(info.value, DriverUnavailable)
    with pytest.raises(DriverError, match="NoSuchBucket"):
        driver.set("k", b"v")
    with pytest.raises(DriverError, match="NoSuchBucket"):
        driver.clear()
