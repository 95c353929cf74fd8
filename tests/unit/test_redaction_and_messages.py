"""Credentials never reach messages, reprs or stats; unknown options get one wording with a suggestion; the
rate-limited log writes one line per cause per interval."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache
from cachekit._logging import RateLimitedLog, invalidation_failed, read_failed, set_log_interval
from cachekit._options import unknown_options_message
from cachekit._redact import redact, redact_value
from cachekit.drivers.filesystem import FilesystemDriver
from cachekit.drivers.memory import MemoryDriver
from cachekit.drivers.redis import RedisDriver
from cachekit.drivers.s3 import S3Driver
from cachekit.errors import CircuitOpenError, ConfigurationError, CorruptEntryError, DriverUnavailable
from cachekit.s3db import Database
from tests.conftest import FakeClock
from tests.servers import free_port

SECRET = "s3cretPW"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"cannot reach redis://:{SECRET}@10.0.0.5:6379/0", "cannot reach redis://:***@10.0.0.5:6379/0"),
        (f"rediss://app:{SECRET}@h:6380/2?db=1", "rediss://app:***@h:6380/2?db=1"),
        (f"s3://AKIA:{SECRET}@bucket/app", "s3://AKIA:***@bucket/app"),
        (f"http://minio:{SECRET}@127.0.0.1:9000", "http://minio:***@127.0.0.1:9000"),
        (f"redis://h/0?password={SECRET}&x=1", "redis://h/0?password=***&x=1"),
        (f"{{'url': 'redis://h', 'password': '{SECRET}'}}", "{'url': 'redis://h', 'password': '***'}"),
        (f"aws_secret_access_key={SECRET}, region=eu", "aws_secret_access_key=***, region=eu"),
        ("redis://127.0.0.1:6379/0 password=None", "redis://127.0.0.1:6379/0 password=None"),
    ],
)
def test_redact_masks_every_shape_of_secret(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_value_walks_stats() -> None:
    stats = {"url": f"redis://:{SECRET}@h", "password": SECRET, "nested": [{"endpoint_url": f"http://u:{SECRET}@h"}]}
    assert SECRET not in repr(redact_value(stats))
    assert redact_value({"hits": 3, "password": None}) == {"hits": 3, "password": None}


def test_a_tier_with_a_typo_does_not_echo_its_password() -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"
    tiers = [{"driver": "redis", "config": {"url": url, "comand_timeout": 1}}]
    with pytest.raises(ConfigurationError) as raised:
        Cache(drivers=tiers)
    assert SECRET not in str(raised.value)
    assert "did you mean 'command_timeout'?" in str(raised.value)


def test_redis_messages_and_stats_never_show_the_password() -> None:
    driver = RedisDriver(url=f"redis://app:{SECRET}@127.0.0.1:{free_port()}/0", connect_timeout=0.2)
    with pytest.raises(DriverUnavailable) as raised:
        driver.get("k")
    for _ in range(2):
        with pytest.raises(DriverUnavailable):
            driver.get("k")
    with pytest.raises(CircuitOpenError) as fast:  # three refusals opened the breaker
        driver.get("k")
    for text in (str(raised.value), str(fast.value), repr(driver), repr(driver.stats()), repr(driver.breaker)):
        assert SECRET not in text
    driver.close()


def test_s3_endpoint_userinfo_is_not_in_stats_or_errors() -> None:
    endpoint = f"http://minio:{SECRET}@127.0.0.1:{free_port()}"
    driver = S3Driver(bucket="b", endpoint_url=endpoint, aws_access_key_id="AKIA", aws_secret_access_key=SECRET,
                      connect_timeout=0.2, read_timeout=0.2, max_attempts=1)
    assert driver.stats()["endpoint_url"] == endpoint.replace(SECRET, "***")
    with pytest.raises(DriverUnavailable) as raised:
        driver.get("k")
    assert SECRET not in str(raised.value)
    assert SECRET not in repr(driver.stats()) + repr(driver)
    driver.close()


@pytest.mark.parametrize("url", [f"s3://AKIA:{SECRET}", f"s3://AKIA:{SECRET}@b?colour=1", f"http://AKIA:{SECRET}@b"])
def test_database_connect_errors_do_not_echo_the_secret(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        Database.connect(url)
    assert SECRET not in str(raised.value)


# -- unknown options --------------------------------------------------------------------------------------------


def test_unknown_option_message_suggests_the_likely_one() -> None:
    message = unknown_options_message("redis driver", ["comand_timeout", "zzz"], ["command_timeout", "url"])
    assert message == (
        "unknown redis driver options 'comand_timeout' (did you mean 'command_timeout'?), 'zzz'; "
        "accepted options: command_timeout, url"
    )


@pytest.mark.parametrize(
    ("build", "typo", "suggestion"),
    [
        (MemoryDriver, "max_szie", "max_size"),
        (RedisDriver, "key_prefx", "key_prefix"),
        (lambda **kw: S3Driver(bucket="b", **kw), "endpoint", "endpoint_url"),
        ("filesystem", "eviction_polcy", "eviction_policy"),
    ],
)
def test_every_driver_words_unknown_options_the_same_way(
    build: Any, typo: str, suggestion: str, tmp_path: Path
) -> None:
    if build == "filesystem":
        def build(**kw: Any) -> FilesystemDriver:
            return FilesystemDriver(directory=str(tmp_path), **kw)
    wording = rf"^unknown .*driver option '{typo}' \(did you mean '{suggestion}'\?\); accepted options: "
    with pytest.raises(ConfigurationError, match=wording):
        build(**{typo: 1})


# -- the rate-limited log ---------------------------------------------------------------------------------------


def test_one_line_per_cause_per_interval_with_the_count_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    ticks = FakeClock(0.0)
    limiter = RateLimitedLog(10.0, clock=ticks)
    with caplog.at_level(logging.WARNING, logger="cachekit"):
        assert limiter.log(logging.WARNING, "a", "down: %s", f"redis://:{SECRET}@h") is True
        for _ in range(99):
            assert limiter.log(logging.WARNING, "a", "down") is False
        assert limiter.log(logging.WARNING, "b", "other cause") is True
        ticks.advance(10.0)
        assert limiter.log(logging.WARNING, "a", "down again") is True
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["down: redis://:***@h", "other cause", "down again [99 similar suppressed in the last 10.0 s]"]


def test_namespace_helpers_rate_limit_read_and_invalidation_failures(caplog: pytest.LogCaptureFixture) -> None:
    set_log_interval(60)
    with caplog.at_level(logging.WARNING, logger="cachekit"):
        for _ in range(50):
            read_failed("users", "redis", "users/1", DriverUnavailable("down"))
            invalidation_failed("users", "redis", 3, DriverUnavailable("down"))
        read_failed("users", "redis", "users/1", CorruptEntryError("bad blob"))
    levels = [(record.levelname, record.getMessage().split(" (")[0]) for record in caplog.records]
    assert levels == [
        ("WARNING", "cachekit: driver error on redis"),
        ("ERROR", "cachekit: invalidation on redis failed after 3 attempt(s)"),
        ("WARNING", "cachekit: corrupt entry dropped on redis"),
    ]


def test_log_interval_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="log interval"):
        set_log_interval(0)
