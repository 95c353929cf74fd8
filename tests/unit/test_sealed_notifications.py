"""Sealed generation values and notifications (issue 19, item 3): only what the signing key sealed is adopted.

A fuzz of notifications for a signed namespace: random bytes, bit flips, truncations and splices of valid
sealed messages, plain (unsigned) values and values sealed with another key. Every one is refused (``REFUSED``)
or does not parse (``None``), unless every line is one the key sealed (each line carries its own MAC).
"""

from __future__ import annotations

import random

from cachekit.generations._notifications import REFUSED, parse_notification
from cachekit.generations._signing import SEALED_SIZE, GenerationSeal

KEY = b"tenant-a-signing-key-0123456789"
SEAL = GenerationSeal(KEY)
OTHER = GenerationSeal(b"tenant-b-signing-key-0123456789")


def _message(seal: GenerationSeal, pairs: list[tuple[str, int]], namespace: str = "ns") -> bytes:
    lines = [namespace] + [f"{scope}\t{seal.seal_text(namespace, scope, value)}" for scope, value in pairs]
    return "\n".join(lines).encode()


def test_a_sealed_notification_opens() -> None:
    pairs = [("users/agg", 1_700_000_000_000_001), ("users/item/ab", 7)]
    assert parse_notification(_message(SEAL, pairs), {"ns": SEAL}) == ("ns", pairs)


def test_a_retired_key_still_opens_and_another_key_does_not() -> None:
    rotated = GenerationSeal(b"tenant-a-new-signing-key-012345", [KEY])
    assert parse_notification(_message(SEAL, [("users", 5)]), {"ns": rotated}) == ("ns", [("users", 5)])
    assert parse_notification(_message(OTHER, [("users", 5)]), {"ns": SEAL}) is REFUSED


def test_plain_values_and_moved_macs_are_refused() -> None:
    assert parse_notification(b"ns\nusers\t5", {"ns": SEAL}) is REFUSED
    sealed = SEAL.seal_text("ns", "users", 5)
    assert parse_notification(f"ns\nusers/agg\t{sealed}".encode(), {"ns": SEAL}) is REFUSED  # another scope
    assert parse_notification(f"other\nusers\t{sealed}".encode(), {"other": SEAL}) is REFUSED  # another namespace
    assert parse_notification(f"ns\nusers\t6{sealed[1:]}".encode(), {"ns": SEAL}) is REFUSED  # another value


def test_fuzzed_sealed_notifications_are_never_adopted() -> None:
    rng = random.Random(19)
    seals = {"ns": SEAL}
    sealed_pairs = [[(f"users/item/{i}", rng.randrange(1, 1 << 62)) for i in range(rng.randrange(1, 4))]
                    for _ in range(50)]
    valid = [_message(SEAL, pairs) for pairs in sealed_pairs]
    every_pair = {pair for pairs in sealed_pairs for pair in pairs}
    adopted = 0
    for case in range(5000):
        base = bytearray(rng.choice(valid))
        kind = case % 4
        if kind == 0:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
        elif kind == 1:
            for _ in range(rng.randrange(1, 4)):
                base[rng.randrange(len(base))] ^= 1 << rng.randrange(8)
            data = bytes(base)
        elif kind == 2:
            data = bytes(base[: rng.randrange(len(base))])
        else:
            other = rng.choice(valid)
            cut = rng.randrange(len(base))
            data = bytes(base[:cut]) + other[rng.randrange(len(other)):]
        result = parse_notification(data, seals)
        if result is None or result is REFUSED:
            continue
        namespace, pairs = result
        # Each line carries its own MAC: a cut at a line boundary keeps lines the key sealed, nothing else.
        assert namespace == "ns"
        assert set(pairs) <= every_pair, f"case {case}: adopted a value the key never sealed: {data!r}"
        adopted += 1
    assert adopted < 1000


def test_sealed_bytes_round_trip_and_refuse_tampering() -> None:
    blob = SEAL.seal_bytes("ns", "users", 42)
    assert len(blob) == SEALED_SIZE
    assert SEAL.open_bytes("ns", "users", blob) == 42
    assert SEAL.open_bytes("ns", "users/agg", blob) is None
    assert OTHER.open_bytes("ns", "users", blob) is None
    assert SEAL.open_bytes("ns", "users", (42).to_bytes(8, "big")) is None
    for index in range(SEALED_SIZE):
        flipped = bytearray(blob)
        flipped[index] ^= 0x01
        assert SEAL.open_bytes("ns", "users", bytes(flipped)) is None
