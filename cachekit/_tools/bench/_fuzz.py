"""Section ``fuzz`` (issue 9): :meth:`Codec.decode` against hostile bytes, in a child process.

The child runs under an address-space limit (``RLIMIT_AS``), so an unbounded allocation is a ``MemoryError``
that shows up as an escaped exception, and a C-stack overflow is a signal that shows up as the child's death;
both count as failures. The only exception allowed out of ``decode`` is
:class:`~cachekit.errors.CorruptEntryError`. Cases (seeded, so a failure can be replayed):

* ``random``: random bytes of random length; ``truncated``: valid envelopes cut short;
* ``bitflip``: valid envelopes with 1-3 bits flipped (the checksum or MAC must catch every one);
* ``resealed``: a mutated payload or flags byte under a *recomputed* checksum, so the payload decoders
  (msgpack with its hooks, json, gzip, zlib, zstd) see the mutation; ``unknown-ext``: msgpack ext codes
  cachekit never writes;
* ``deep``: arrays, maps, tuple markers and format 1's recursive tuple exts nested 1,000 to 100,000 levels;
* ``bomb``: gzip, zlib and zstd payloads that inflate to 1 GiB (256 MiB in the quick run), with and without
  a declared zstd size;
* ``signed``: a signing codec fed unsigned, re-signed-with-another-key and bit-flipped envelopes.

``tests/unit/test_codec_fuzz.py`` runs a few thousand cases of the same generator in CI.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from ._core import Outcome, Section, Settings

__all__ = ["STRICT_KINDS", "fuzz", "run_fuzz", "run_in_child"]

_SIGNING_KEY = b"fuzz-signing-key-0123456789"
_OTHER_KEY = b"fuzz-another-key-0123456789"
_ADDRESS_LIMIT = 1 << 30
_FULL_CASES, _QUICK_CASES = 100_000, 10_000
_KINDS = ("random", "truncated", "bitflip", "resealed", "unknown-ext", "deep", "signed")
#: Kinds whose every case must be refused: a decoded one is an altered, planted or oversized entry served.
STRICT_KINDS = frozenset({"truncated", "bitflip", "signed", "bomb"})


def _values() -> list[Any]:
    import datetime as dt
    import uuid
    from decimal import Decimal

    nested: Any = ()
    for _ in range(50):
        nested = (nested, {1, 2})
    return [
        None, 0, -1, 2**63 - 1, 1.5, "", "text", b"\x00\xff", [1, [2, [3]]], {"a": 1, "b": [True, None]},
        (1, "two", (3.0,)), {1, 2, 3}, frozenset({"x"}), {(1, 2): "tuple key"}, nested,
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), dt.date(2026, 1, 2), dt.timedelta(seconds=5),
        Decimal("1.25"), uuid.UUID(int=7), {"blob": "lorem ipsum " * 400},
    ]


class _Corpus:
    """Codecs and valid envelopes to mutate, plus the reseal helper."""

    def __init__(self) -> None:
        from cachekit.codecs import Codec

        now = 1_000_000.0
        clock: Callable[[], float] = lambda: now  # noqa: E731 - fixed: no valid envelope expires mid-run
        self.checked = [
            Codec(clock=clock),
            Codec(clock=clock, compression="gzip", compression_threshold=64),
            Codec(clock=clock, compression="zlib", compression_threshold=64),
            Codec("json", clock=clock, compression="gzip", compression_threshold=64),
        ]
        try:
            self.checked.append(Codec(clock=clock, compression="zstd", compression_threshold=64))
        except Exception:  # zstandard not installed: its cases are left out
            pass
        self.signed = Codec(clock=clock, signing_key=_SIGNING_KEY, compression="gzip", compression_threshold=64)
        self.foreign_signer = Codec(clock=clock, signing_key=_OTHER_KEY)
        self.blobs: list[tuple[Any, bytes]] = []
        for codec in self.checked:
            for value in _values():
                try:
                    self.blobs.append((codec, codec.encode(value, 3600)))
                except Exception:  # json cannot hold tuples' keys, sets, ...: not part of its corpus
                    pass
        self.signed_blobs = [self.signed.encode(value, 3600) for value in _values()]

    @staticmethod
    def reseal(blob: bytes) -> bytes:
        """A checked envelope with its CRC trailer recomputed over whatever the rest now holds."""
        body = blob[:-4]
        return body + struct.pack("<I", zlib.crc32(body))

    @staticmethod
    def envelope(payload: bytes, flags: int, sid: int = 1) -> bytes:
        body = struct.pack("<BBBBdd", 0xCE, 2, sid, flags, 1_000_000.0, 0.0) + payload
        return body + struct.pack("<I", zlib.crc32(body))


def _flip(rng: random.Random, blob: bytes, bits: int, start: int = 0) -> bytes:
    data = bytearray(blob)
    for position in rng.sample(range(start * 8, len(data) * 8), bits):  # distinct: two flips could cancel
        data[position // 8] ^= 1 << (position % 8)
    return bytes(data)


def _case(rng: random.Random, corpus: _Corpus, kind: str) -> tuple[Any, bytes]:
    codec, blob = rng.choice(corpus.blobs)
    if kind == "random":
        return rng.choice(corpus.checked), rng.randbytes(rng.randrange(0, 600))
    if kind == "truncated":
        return codec, blob[: rng.randrange(0, len(blob))]
    if kind == "bitflip":
        return codec, _flip(rng, blob, rng.randint(1, 3))
    if kind == "resealed":
        # Mutate the serializer id, flags, times or payload, then make the checksum agree.
        return codec, corpus.reseal(_flip(rng, blob, rng.randint(1, 8), start=2))
    if kind == "unknown-ext":
        # Raw ext8 bytes (msgpack.ExtType refuses the reserved negative codes, e.g. -1, the timestamp).
        code = rng.choice([0, 10, 42, 127, -1, -128, *range(1, 10)])
        data = rng.randbytes(rng.randrange(0, 40))
        ext = b"\xc7" + bytes([len(data)]) + struct.pack("b", code) + data
        return corpus.checked[0], corpus.envelope(b"\x92" + ext + b"\x81\xa1k" + ext, 0x10)
    if kind == "deep":
        depth = rng.choice([1_000, 1_023, 1_024, 1_025, 5_000, 100_000])
        if rng.random() < 0.2:  # format 1's tuple: ext 7 holding a packed tuple, recursively (C-stack overflow)
            headers = [b"\xc9" + struct.pack(">I", 1 + 6 * level) + b"\x07" for level in range(depth)]
            return corpus.checked[0], corpus.envelope(b"".join(reversed(headers)) + b"\x90", 0x10)
        opener = rng.choice([b"\x91", b"\x81\xa1k", b"\x92\xc7\x00\x07", b"\x92\xc7\x00\x08", b"["])
        payload = opener * depth + (b"1" + b"]" * depth if opener == b"[" else b"\xc0")
        codec = corpus.checked[3] if opener == b"[" else corpus.checked[0]
        return codec, corpus.envelope(payload, 0x10, sid=2 if opener == b"[" else 1)
    # signed
    choice = rng.randrange(4)
    if choice == 0:
        return corpus.signed, corpus.checked[0].encode({"planted": True}, 3600)
    if choice == 1:
        return corpus.signed, corpus.foreign_signer.encode({"planted": True}, 3600)
    signed = rng.choice(corpus.signed_blobs)
    if choice == 2:
        return corpus.signed, _flip(rng, signed, rng.randint(1, 3))
    return corpus.signed, signed[: rng.randrange(len(signed))]


def _bombs(size: int) -> Iterator[tuple[str, int, bytes]]:
    """``(name, compression id, payload)`` of payloads inflating to ``size`` zero bytes, built in 1 MiB steps."""
    chunk, steps = bytes(1 << 20), size >> 20
    for name, compression, wbits in (("gzip", 1, 31), ("zlib", 2, 15)):
        deflater = zlib.compressobj(1, wbits=wbits)
        yield name, compression, b"".join([*(deflater.compress(chunk) for _ in range(steps)), deflater.flush()])
    try:
        import zstandard
    except ImportError:
        return
    for declared in (True, False):
        streamer = zstandard.ZstdCompressor(level=3).compressobj(size=size if declared else -1)
        name = "zstd (size declared)" if declared else "zstd (size unknown)"
        yield name, 3, b"".join([*(streamer.compress(chunk) for _ in range(steps)), streamer.flush()])


def _outcome(codec: Any, blob: bytes) -> str:
    from cachekit import MISSING
    from cachekit.errors import CorruptEntryError

    try:
        value = codec.decode(blob)
    except CorruptEntryError:
        return "corrupt"
    except BaseException as exc:
        return f"escaped {type(exc).__name__}"
    return "expired" if value is MISSING else "decoded"


def fuzz(count: int, seed: int, bomb_size: int) -> dict[str, dict[str, int]]:
    """Run ``count`` seeded cases (plus the bombs) in this process; counts by kind, then by outcome."""
    rng = random.Random(seed)
    corpus = _Corpus()
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in (*_KINDS, "bomb")}
    for number in range(count):
        kind = _KINDS[number % len(_KINDS)]
        codec, blob = _case(rng, corpus, kind)
        counts[kind][_outcome(codec, blob)] += 1
    for _name, compression, payload in _bombs(bomb_size):
        for sid, codec in ((1, corpus.checked[0]), (2, corpus.checked[3])):
            counts["bomb"][_outcome(codec, corpus.envelope(payload, compression, sid=sid))] += 1
    return {kind: dict(outcomes) for kind, outcomes in counts.items()}


_CHILD = """
import json, resource, sys
limit = int(sys.argv[4])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from cachekit._tools.bench._fuzz import fuzz
print(json.dumps(fuzz(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
"""


def run_in_child(
    count: int, *, seed: int = 9, bomb_size: int = 1 << 30, address_limit: int = _ADDRESS_LIMIT, timeout: float = 600
) -> dict[str, Any]:
    """Run :func:`fuzz` in a child under ``RLIMIT_AS``: ``{"returncode", "counts", "stderr"}``.

    A negative ``returncode`` is the signal that killed the child (``-11``: SIGSEGV); ``counts`` is then ``None``.
    """
    args = [sys.executable, "-c", _CHILD, str(count), str(seed), str(bomb_size), str(address_limit)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    counts = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout else None
    return {"returncode": done.returncode, "counts": counts, "stderr": done.stderr[-2000:]}


def run_fuzz(settings: Settings, _services: Any = None) -> Section:
    """``cachekit bench --only fuzz``: >= 100,000 cases (10,000 with ``--quick``), counted by outcome."""
    quick = settings.mode == "quick"
    count = _QUICK_CASES if quick else _FULL_CASES
    bomb_size = (256 << 20) if quick else (1 << 30)
    section = Section("fuzz", f"Codec.decode fuzz: {count:,} cases + bombs, child under RLIMIT_AS 1 GiB")
    result = run_in_child(count, bomb_size=bomb_size)
    if result["counts"] is None:
        section.outcomes.append(Outcome("fuzz_child", "fuzz child process", result["returncode"], "exit status",
                                        target="0", status="MISS", note=result["stderr"][-300:]))
        return section
    escaped = 0
    for kind, outcomes in result["counts"].items():
        for outcome, number in sorted(outcomes.items()):
            bad = outcome.startswith("escaped") or (kind in STRICT_KINDS and outcome != "corrupt")
            escaped += number if bad else 0
            section.outcomes.append(Outcome(f"fuzz_{kind}_{outcome.replace(' ', '_')}", f"{kind}: {outcome}", number,
                                            "cases", status="MISS" if bad else None))
    total = sum(sum(outcomes.values()) for outcomes in result["counts"].values())
    section.outcomes.append(Outcome("fuzz_failures", f"escaped exceptions, or strict kinds decoded ({total:,} cases)",
                                    escaped, "cases", target="0", status="PASS" if escaped == 0 else "MISS"))
    section.notes.append("decoded/expired: the mutation left a valid envelope (a resealed payload, a fresh "
                         "deadline); corrupt: CorruptEntryError, a miss. truncated, bitflip, signed and bomb "
                         "cases must all be corrupt. Seeded (seed 9): failures replay.")
    return section
