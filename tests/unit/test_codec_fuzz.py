"""Fuzz ``Codec.decode`` in a child process (a signal is a failure) under an address-space limit (issue 9).

A few thousand seeded cases of every kind (random bytes, truncations, bit flips, resealed payloads, unknown ext
codes, nesting to 100,000 levels, signed-envelope forgeries) plus gzip/zlib/zstd bombs inflating to 256 MiB,
in a child limited to 1 GiB of address space: only ``CorruptEntryError`` may escape. ``cachekit bench --only
fuzz`` runs 100,000 cases and 1 GiB bombs.
"""

from __future__ import annotations

import sys

import pytest

from cachekit._tools.bench._fuzz import STRICT_KINDS, run_in_child

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_AS is POSIX")


@pytest.fixture(scope="module")
def outcome() -> dict[str, object]:
    return run_in_child(3_500, seed=20269, bomb_size=256 << 20, timeout=120)


def test_the_child_survives_every_case(outcome: dict[str, object]) -> None:
    assert outcome["returncode"] == 0, f"fuzz child died: {outcome['returncode']} {outcome['stderr']}"


def test_only_corrupt_entry_errors_escape(outcome: dict[str, object]) -> None:
    counts = outcome["counts"]
    assert isinstance(counts, dict)
    escaped = {kind: {o: n for o, n in found.items() if o.startswith("escaped")} for kind, found in counts.items()}
    assert not any(escaped.values()), escaped


def test_altered_planted_and_oversized_entries_are_never_served(outcome: dict[str, object]) -> None:
    counts = outcome["counts"]
    assert isinstance(counts, dict)
    for kind in STRICT_KINDS:
        assert set(counts[kind]) == {"corrupt"}, (kind, counts[kind])
    assert counts["bomb"]["corrupt"] >= 4  # gzip and zlib, each read by msgpack and json codecs


def test_every_kind_ran_and_mutations_reach_the_payload_decoders(outcome: dict[str, object]) -> None:
    counts = outcome["counts"]
    assert isinstance(counts, dict)
    assert all(sum(found.values()) >= 400 for kind, found in counts.items() if kind != "bomb"), counts
    # Resealed cases get past the checksum, so some still decode and some fail inside msgpack/json/zlib.
    assert counts["resealed"].get("decoded", 0) > 0
    assert counts["resealed"]["corrupt"] > 0
    assert counts["deep"]["corrupt"] > 0
