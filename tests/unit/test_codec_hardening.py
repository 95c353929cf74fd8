"""The codec against hostile and oversized bytes (issue 9): depth, size caps, checksums, signing, flags."""

from __future__ import annotations

import struct
import subprocess
import sys
import warnings
import zlib
from typing import Any

import pytest

from cachekit import MISSING, Cache, cached
from cachekit._types import normalize_ttl
from cachekit.codecs import CHECKSUM_SIZE, HEADER_SIZE, MAC_SIZE, MAX_DEPTH, Codec
from cachekit.errors import ConfigurationError, CorruptEntryError, SerializationError, UncacheableValueWarning

KEY = b"current-signing-key-0123456789"
OLD_KEY = b"retired-signing-key-0123456789"


def nested_tuples(depth: int) -> Any:
    value: Any = ()
    for _ in range(depth):
        value = (value,)
    return value


def reseal(blob: bytes) -> bytes:
    body = blob[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def envelope(payload: bytes, flags: int) -> bytes:
    body = struct.pack("<BBBBdd", 0xCE, 2, 1, flags, 1.0, 0.0) + payload
    return body + struct.pack("<I", zlib.crc32(body))


# -- depth ------------------------------------------------------------------------------------------------------


def test_deeply_nested_tuples_and_sets_round_trip_in_a_small_thread_stack() -> None:
    """A few hundred nested tuples used to overflow the C stack on decode (SIGSEGV): run it in a child."""
    script = f"""
import threading
from cachekit.codecs import Codec
value = ()
for _ in range({MAX_DEPTH - 1}):
    value = (value, frozenset({{1}}))
codec = Codec()
blob = codec.encode(value, None)
out = []
threading.stack_size(256 * 1024)
def read():
    found, depth = codec.decode(blob), 0
    while found:
        assert found[1] == frozenset({{1}})
        found, depth = found[0], depth + 1
    out.append(depth)
worker = threading.Thread(target=read)
worker.start(); worker.join()
print(out)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"[{MAX_DEPTH - 1}]"


def test_a_value_nested_too_deep_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match=f"nested more than about {MAX_DEPTH}"):
        Codec().encode(nested_tuples(MAX_DEPTH + 100), None)
    deep: Any = []
    for _ in range(MAX_DEPTH + 100):
        deep = [deep]
    with pytest.raises(SerializationError):
        Codec().encode(deep, None)


def test_a_too_deep_result_is_returned_uncached_with_a_warning() -> None:
    calls = []

    class Repo:
        name = "deep"
        cache = Cache(driver="memory", namespace="deep")

        @cached(action="get")
        def get(self, id: str) -> Any:
            calls.append(id)
            return nested_tuples(MAX_DEPTH + 100)

    repo = Repo()
    with pytest.warns(UncacheableValueWarning, match="nested more than"):
        first = repo.get("a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncacheableValueWarning)
        assert type(repo.get("a")) is type(first)  # (== on 1,100 levels would hit Python's recursion limit)
    assert calls == ["a", "a"]
    assert Repo.cache.stats().hits == 0


@pytest.mark.parametrize("depth", [1_025, 5_000, 100_000])
@pytest.mark.parametrize("opener", [b"\x91", b"\x81\xa1k", b"\x92\xc7\x00\x07"], ids=["array", "map", "tuple"])
def test_a_planted_deep_payload_is_corrupt(depth: int, opener: bytes) -> None:
    with pytest.raises(CorruptEntryError):
        Codec().decode(envelope(opener * depth + b"\xc0", 0x10))


def test_old_style_recursive_tuple_ext_is_refused() -> None:
    """Format 1 packed each tuple as ext 7 holding another packed blob; such data is refused, not recursed."""
    inner = b"\x90"
    for _ in range(300):
        inner = b"\xc7" + bytes([len(inner)]) + b"\x07" + inner if len(inner) < 256 else inner
    with pytest.raises(CorruptEntryError, match="marker carries no data"):
        Codec().decode(envelope(inner, 0x10))


# -- size caps and decompression ----------------------------------------------------------------------------


def test_a_value_over_max_value_bytes_is_not_stored() -> None:
    with pytest.raises(SerializationError, match="max_value_bytes=1000"):
        Codec(max_value_bytes=1000).encode("x" * 2000, None)
    assert Codec(max_value_bytes=1000).decode(Codec(max_value_bytes=1000).encode("x" * 900, None)) == "x" * 900


@pytest.mark.parametrize("compression", ["gzip", "zlib", "zstd"])
def test_a_payload_inflating_past_max_value_bytes_is_corrupt(compression: str) -> None:
    if compression == "zstd":
        pytest.importorskip("zstandard")
    writer = Codec(compression=compression, compression_threshold=1)
    blob = writer.encode("0" * 200_000, None)
    assert len(blob) < 2_000
    assert Codec(max_value_bytes=200_100).decode(blob) == "0" * 200_000  # the reader's own config is not needed
    with pytest.raises(CorruptEntryError, match="max_value_bytes=100000"):
        Codec(max_value_bytes=100_000).decode(blob)


def test_a_zstd_frame_without_a_declared_size_is_capped_too() -> None:
    zstandard = pytest.importorskip("zstandard")
    streamer = zstandard.ZstdCompressor().compressobj()  # streaming: no content size in the frame header
    payload = streamer.compress(b"\x90" + bytes(300_000)) + streamer.flush()
    assert zstandard.frame_content_size(payload) == -1
    with pytest.raises(CorruptEntryError):
        Codec(max_value_bytes=100_000).decode(envelope(payload, 3))


def test_a_compressed_blob_is_read_per_its_flags_by_a_reader_without_compression() -> None:
    blob = Codec(compression="zlib", compression_threshold=1).encode({"a": "b" * 100}, None)
    assert Codec(compression=None).decode(blob) == {"a": "b" * 100}


@pytest.mark.parametrize("flags", [0x20, 0x40, 0x80, 0x04, 0x0F, 0x31])
def test_unknown_flags_are_corrupt(flags: int) -> None:
    blob = bytearray(Codec().encode({"a": 1}, None))
    blob[3] = flags
    with pytest.raises(CorruptEntryError):
        Codec().decode(reseal(bytes(blob)))


def test_trailing_bytes_after_a_gzip_stream_are_corrupt() -> None:
    blob = Codec(compression="gzip", compression_threshold=1).encode("x" * 100, None)
    with pytest.raises(CorruptEntryError, match="follow the compressed stream"):
        Codec().decode(reseal(blob[:-4] + b"junk" + bytes(4)))


# -- integrity ------------------------------------------------------------------------------------------------


def test_every_single_bit_flip_is_caught() -> None:
    codec = Codec()
    blob = codec.encode({"id": "u1", "score": 3.5, "tags": ["a", "b"], "when": (1, 2)}, None)
    for position in range(len(blob) * 8):
        flipped = bytearray(blob)
        flipped[position // 8] ^= 1 << (position % 8)
        with pytest.raises(CorruptEntryError):
            codec.decode(bytes(flipped))


def test_a_format_1_envelope_is_foreign() -> None:
    legacy = struct.pack("<BBBBdd", 0xCE, 1, 1, 0, 1.0, 0.0) + b"\x81\xa1a\x01"
    with pytest.raises(CorruptEntryError, match="another format"):
        Codec().decode(legacy)


def test_signed_envelopes_round_trip_and_carry_a_mac() -> None:
    codec = Codec(signing_key=KEY)
    blob = codec.encode({"a": (1, 2)}, None)
    assert codec.overhead == HEADER_SIZE + MAC_SIZE
    assert Codec().overhead == HEADER_SIZE + CHECKSUM_SIZE
    assert blob[1] == 4  # format 4: the MAC covers the key too (3, unbound, is refused since issue 19)
    assert codec.decode(blob) == {"a": (1, 2)}
    assert Codec(signing_key=KEY.decode()).decode(blob) == {"a": (1, 2)}  # a str key is its UTF-8 bytes


def test_a_signing_codec_refuses_unsigned_foreign_and_altered_envelopes() -> None:
    codec = Codec(signing_key=KEY)
    with pytest.raises(CorruptEntryError, match="unsigned envelope"):
        codec.decode(Codec().encode({"planted": True}, None))
    with pytest.raises(CorruptEntryError, match="signature matches neither"):
        codec.decode(Codec(signing_key=b"someone-elses-key-0123456789").encode({"planted": True}, None))
    blob = bytearray(codec.encode({"a": 1}, None))
    blob[-1] ^= 0x01
    with pytest.raises(CorruptEntryError, match="signature"):
        codec.decode(bytes(blob))
    with pytest.raises(CorruptEntryError, match="no signing_key"):
        Codec().decode(codec.encode({"a": 1}, None))


def test_key_rotation_accepts_the_retired_key_until_it_is_dropped() -> None:
    old_writer = Codec(signing_key=OLD_KEY)
    old_blob = old_writer.encode("old", None)
    rotated = Codec(signing_key=KEY, verify_keys=[OLD_KEY])
    assert rotated.decode(old_blob) == "old"
    new_blob = rotated.encode("new", None)
    assert Codec(signing_key=OLD_KEY, verify_keys=[KEY]).decode(new_blob) == "new"  # step 1 readers
    with pytest.raises(CorruptEntryError):
        Codec(signing_key=KEY).decode(old_blob)  # step 3: the old key is gone
    assert Codec(signing_key=KEY).decode(new_blob) == "new"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"signing_key": b"short"}, "16 to 64 bytes"),
        ({"signing_key": b"x" * 65}, "16 to 64 bytes"),
        ({"signing_key": 12345}, "bytes or str"),
        ({"verify_keys": [KEY]}, "verify_keys needs a signing_key"),
        ({"signing_key": KEY, "verify_keys": KEY}, "a list of keys"),
        ({"signing_key": KEY, "verify_keys": [b"short"]}, "verify_keys item"),
        ({"max_value_bytes": 0}, "max_value_bytes"),
        ({"max_value_bytes": True}, "max_value_bytes"),
    ],
)
def test_bad_hardening_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Codec(**options)


def test_the_repr_never_shows_the_keys() -> None:
    text = repr(Codec(signing_key=KEY, verify_keys=[OLD_KEY]))
    assert "signed" in text
    assert KEY.decode() not in text
    assert OLD_KEY.decode() not in text


def test_an_expired_signed_envelope_is_missing(clock: Any) -> None:
    codec = Codec(signing_key=KEY, clock=clock)
    blob = codec.encode("v", 10)
    clock.advance(10)
    assert codec.decode(blob) is MISSING
    assert Codec.expires_at(blob) == clock.now


# -- TTLs -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", [10**400, -(10**400), float("inf"), float("nan"), -1])
def test_unrepresentable_ttls_are_configuration_errors(ttl: Any) -> None:
    with pytest.raises(ConfigurationError, match="finite number of seconds"):
        normalize_ttl(ttl)
    with pytest.raises(ConfigurationError):
        Cache(driver="memory", ttl=ttl)
