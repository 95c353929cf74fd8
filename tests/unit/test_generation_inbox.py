"""The Redis generation subscriber's inbox: frames applied once, whole, by a reading thread or the subscriber.

A reading thread pulls the subscription's socket itself (issue 23, item 6): it hears of a bump that no
subscriber thread has received, so a process busy with hits does not wait for the OS to schedule that thread.
Driven over a real socket pair.
"""

from __future__ import annotations

import socket
import threading
import weakref
from typing import Any

import pytest

from cachekit.drivers.redis import RedisDriver
from cachekit.generations.redis import RedisGenerations, _frame, _Inbox


class _Store:
    """Records what the inbox applies (stands in for RedisGenerations' callbacks)."""

    def __init__(self, subscribed: bool = True) -> None:
        self.messages: list[bytes] = []
        self.subscribed = 0
        self._subscribed = threading.Event()
        if subscribed:
            self._subscribed.set()

    def _on_message(self, data: bytes) -> None:
        self.messages.append(data)

    def _on_subscribed(self) -> None:
        self.subscribed += 1
        self._subscribed.set()


def _message(data: bytes, push: bool = False) -> bytes:
    head = b">3" if push else b"*3"
    return head + b"\r\n$7\r\nmessage\r\n$3\r\ngen\r\n$" + str(len(data)).encode() + b"\r\n" + data + b"\r\n"


SUBSCRIBED = b"*3\r\n$9\r\nsubscribe\r\n$3\r\ngen\r\n:1\r\n"


@pytest.fixture
def pair() -> Any:
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


def test_a_frame_is_whole_or_none() -> None:
    whole = _message(b"ns\nusers/item/1\t7")
    for cut in range(len(whole)):
        buf = bytearray(whole[:cut]) + bytearray(64)
        assert _frame(buf, 0, cut) is None, cut
    buf = bytearray(whole) + bytearray(8)
    assert _frame(buf, 0, len(whole)) == ([b"message", b"gen", b"ns\nusers/item/1\t7"], len(whole))


def test_a_read_hears_a_bump_no_subscriber_thread_has_received(pair: Any) -> None:
    left, right = pair
    store: Any = _Store()
    inbox = _Inbox(left)
    right.sendall(_message(b"a") + _message(b"b", push=True))
    inbox.pull(store)  # no receive() ran: the bytes were still in the kernel
    assert store.messages == [b"a", b"b"]
    assert inbox.parsed == inbox.filled == 0


def test_the_read_path_pulls_at_most_once_per_interval(pair: Any, redis_url: str, redis_prefix: str) -> None:
    left, right = pair
    driver = RedisDriver(url=redis_url, key_prefix=redis_prefix)
    store = RedisGenerations(driver)  # its subscriber thread is never started here
    heard: list[bytes] = []
    store._on_message = heard.append  # type: ignore[method-assign]
    store._subscribed.set()
    store._inbox = inbox = _Inbox(left)
    get = store.probed(lambda key: key)
    right.sendall(_message(b"a"))
    assert get("k") == "k"
    assert heard == [b"a"]
    right.sendall(_message(b"b"))
    inbox.due = float("inf")  # within the interval: no pull
    get("k")
    assert heard == [b"a"]
    inbox.due = 0.0
    get("k")
    assert heard == [b"a", b"b"]
    driver.close()


def test_reads_apply_messages_and_the_subscriber_the_rest(pair: Any) -> None:
    left, right = pair
    store: Any = _Store(subscribed=False)
    inbox = _Inbox(left)
    ref = weakref.ref(store)
    right.sendall(SUBSCRIBED + _message(b"a"))
    inbox.pull(store)  # before the confirmation a read leaves everything to the subscriber
    assert store.messages == []
    assert inbox.receive(ref)
    assert store.subscribed == 1
    assert store.messages == [b"a"]

    # A partial frame waits for the rest, whoever receives it; nothing is applied twice.
    second = _message(b"c")
    right.sendall(_message(b"b") + second[:5])
    inbox.pull(store)
    assert store.messages == [b"a", b"b"]
    right.sendall(second[5:])
    assert inbox.receive(ref)
    assert store.messages == [b"a", b"b", b"c"]
    inbox.pull(store)
    assert store.messages == [b"a", b"b", b"c"]
    assert inbox.parsed == inbox.filled == 0


def test_a_frame_larger_than_the_buffer_grows_it(pair: Any) -> None:
    left, right = pair
    store: Any = _Store()
    inbox = _Inbox(left)
    big = b"x" * (len(inbox.buf) * 2)
    sender = threading.Thread(target=right.sendall, args=(_message(big),))
    sender.start()
    ref = weakref.ref(store)
    for _ in range(200):
        if store.messages:
            break
        assert inbox.receive(ref)
    sender.join(10)
    assert store.messages == [big]


def test_a_closed_connection_ends_the_subscription(pair: Any) -> None:
    left, right = pair
    store: Any = _Store()
    inbox = _Inbox(left)
    right.close()
    inbox.pull(store)  # a read never raises for it
    with pytest.raises(ConnectionError):
        inbox.receive(weakref.ref(store))
