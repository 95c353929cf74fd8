"""The Redis generation subscriber's inbox: frames applied once, by a reading thread or the subscriber, only whole.

The kernel copies a notification into a zeroed buffer while the subscriber waits for the GIL; a read applies
the complete frames it finds there (issue 23, item 6). Driven over a real socket pair.
"""

from __future__ import annotations

import socket
import weakref
from typing import Any

from cachekit.generations.redis import _frame, _Inbox, _wait_in_the_kernel


class _Store:
    """Records what the inbox applies (stands in for RedisGenerations' two callbacks)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.subscribed = 0

    def _on_message(self, data: bytes) -> None:
        self.messages.append(data)

    def _on_subscribed(self) -> None:
        self.subscribed += 1


def _message(data: bytes, push: bool = False) -> bytes:
    head = b">3" if push else b"*3"
    return head + b"\r\n$7\r\nmessage\r\n$3\r\ngen\r\n$" + str(len(data)).encode() + b"\r\n" + data + b"\r\n"


SUBSCRIBED = b"*3\r\n$9\r\nsubscribe\r\n$3\r\ngen\r\n:1\r\n"


def test_a_frame_is_whole_or_none() -> None:
    whole = _message(b"ns\nusers/item/1\t7")
    for cut in range(len(whole)):
        buf = bytearray(whole[:cut]) + bytearray(64)
        assert _frame(buf, 0, buf.find(0)) is None, cut
    buf = bytearray(whole) + bytearray(8)
    assert _frame(buf, 0, len(whole)) == ([b"message", b"gen", b"ns\nusers/item/1\t7"], len(whole))


def test_reads_apply_messages_and_the_subscriber_the_rest() -> None:
    left, right = socket.socketpair()
    try:
        _wait_in_the_kernel(left)
        store: Any = _Store()
        inbox = _Inbox(left)
        ref = weakref.ref(store)
        right.sendall(SUBSCRIBED + _message(b"a"))
        assert inbox.receive(ref)
        assert store.subscribed == 1
        assert store.messages == [b"a"]
        assert inbox.parsed == inbox.filled == 0
        assert not any(inbox.buf[:64])

        # Bytes the subscriber has not taken yet are in the kernel: nothing to see. Once received into the
        # buffer (here: by receive(), as the kernel would during recv_into), a read drains them.
        first, second = _message(b"b", push=True), _message(b"c")
        inbox.buf[inbox.filled : inbox.filled + len(first)] = first
        inbox.buf[inbox.filled + len(first) : inbox.filled + len(first) + 5] = second[:5]
        assert inbox.buf[inbox.probe]
        inbox.drain(store, blocking=False)
        assert store.messages == [b"a", b"b"]  # the partial one waits
        inbox.drain(store, blocking=False)
        assert store.messages == [b"a", b"b"]
        inbox.buf[inbox.filled + len(first) : inbox.filled + len(first) + len(second)] = second
        inbox.drain(store, blocking=False)
        assert store.messages == [b"a", b"b", b"c"]

        # The subscriber then learns of those bytes (recv_into returned their count) and applies nothing twice.
        inbox.filled += len(first) + len(second) - 1  # receive() adds the last byte it reads
        inbox.buf[inbox.filled] = 0
        right.sendall(b"\n")
        assert inbox.receive(ref)
        assert store.messages == [b"a", b"b", b"c"]
        assert inbox.parsed == inbox.filled == 0
    finally:
        left.close()
        right.close()


def test_a_frame_larger_than_the_buffer_grows_it() -> None:
    left, right = socket.socketpair()
    try:
        _wait_in_the_kernel(left)
        store: Any = _Store()
        inbox = _Inbox(left)
        big = b"x" * (len(inbox.buf) * 2)
        right.sendall(_message(big))
        ref = weakref.ref(store)
        for _ in range(20):
            if store.messages:
                break
            assert inbox.receive(ref)
        assert store.messages == [big]
    finally:
        left.close()
        right.close()


def test_a_closed_connection_ends_the_subscription() -> None:
    left, right = socket.socketpair()
    try:
        store: Any = _Store()
        inbox = _Inbox(left)
        right.close()
        try:
            inbox.receive(weakref.ref(store))
        except ConnectionError:
            return
        raise AssertionError("a closed subscription must raise")
    finally:
        left.close()
