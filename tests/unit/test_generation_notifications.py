"""Malformed messages on the Redis generation channel are counted and dropped, never a lost subscription (#19).

A client that can only ``PUBLISH`` on ``{key_prefix}~gen`` sends junk: before, each message that did not parse
ended the subscriber's loop, and every process dropped all it knew (20 messages in 1 s cost 10 losses). Here
the subscription stays up, nothing is reset, the junk is counted, and a real bump that follows still arrives.
A seeded fuzz of messages holds the parser to never raising.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from cachekit import Cache
from cachekit.generations import store_for
from cachekit.generations._notifications import parse_notification
from cachekit.generations.redis import RedisGenerations

pytestmark = pytest.mark.redis

JUNK: list[Any] = [
    b"", b"ns", b"ns\n", b"ns\nscope", b"ns\nscope\t", b"ns\nscope\tabc", b"ns\nscope\t-5", b"ns\nscope\t0",
    b"ns\n\t12", b"ns\nscope\t12\nbroken", b"\xff\xfe\nscope\t1", b"ns\nscope\t" + b"9" * 40, b"ns\nscope\t1.5",
    b"ns\nscope\t\xd9\xa3", "ns\nscope\t\u0663".encode(), b"ns\nscope\t 12", b"ns\nscope\t+12", b"\n\n\n",
    b"ns\nscope\t12" * 1000 + b"\t", b"x" * (2 << 20),
]


class _Listener:
    """Records what the store tells one namespace."""

    def __init__(self) -> None:
        self.resets = 0
        self.changes: list[tuple[str, int]] = []
        self.changed_event = threading.Event()

    def changed(self, pairs: Sequence[tuple[str, int]]) -> None:
        self.changes.extend(pairs)
        self.changed_event.set()

    def reset(self) -> None:
        self.resets += 1

    def resumed(self) -> None:
        pass


@pytest.fixture
def subscribed(redis_url: str, redis_prefix: str) -> Iterator[tuple[Cache, RedisGenerations]]:
    cache = Cache(driver="redis", namespace="notify", config={"url": redis_url, "key_prefix": redis_prefix})
    store = store_for(cache.driver)
    assert isinstance(store, RedisGenerations)
    deadline = time.monotonic() + 5
    while not store.trusted("notify") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.trusted("notify")
    yield cache, store
    cache.close()


def test_junk_from_a_publisher_costs_no_subscription(
    subscribed: tuple[Cache, RedisGenerations], redis_url: str
) -> None:
    import redis

    cache, store = subscribed
    listener = _Listener()
    store.watch("notify", listener)
    publisher = redis.Redis.from_url(redis_url)  # a client that only PUBLISHes on the channel
    try:
        for message in JUNK:
            publisher.publish(store.channel, message)
        cache.invalidate_resource("users")  # a real bump, published after the junk
        assert listener.changed_event.wait(5), "the real bump never arrived"
    finally:
        publisher.close()
    deadline = time.monotonic() + 5  # the local bump may be heard before the last (2 MiB) junk message is read
    while store.malformed_notifications < len(JUNK) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert listener.resets == 0  # the subscription was never lost: nothing was forgotten
    assert store.trusted("notify")
    assert store.malformed_notifications == len(JUNK)
    assert {scope for scope, _ in listener.changes} == {"users"}  # the local bump, and its echo: never junk


def test_a_valid_notification_parses() -> None:
    assert parse_notification(b"ns\nusers/item/ab\t1700000000000001\nusers/agg\t7") == (
        "ns", [("users/item/ab", 1700000000000001), ("users/agg", 7)]
    )
    assert parse_notification("ns\na\tb\t9") == ("ns", [("a\tb", 9)])


@pytest.mark.parametrize("message", JUNK, ids=range(len(JUNK)))
def test_junk_does_not_parse(message: Any) -> None:
    assert parse_notification(message) is None


def test_fuzzed_notifications_never_raise() -> None:
    rng = random.Random(19)
    alphabet = [b"\n", b"\t", b"0", b"9", b"-", b"a", b"/", b"\xff", b"\xd9", b" ", b"ns", b"12345678901234567890"]
    valid = 0
    for _ in range(5000):
        message = b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        parsed = parse_notification(message)
        if parsed is not None:
            valid += 1
            namespace, pairs = parsed
            assert namespace
            assert pairs
            assert all(scope and 0 < value < 1 << 63 for scope, value in pairs)
    assert valid > 0  # the generator does reach the parsing of real pairs
