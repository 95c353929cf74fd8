"""Serializers, compression and the versioned envelope that every stored blob carries.

A blob is a fixed 20-byte header (:data:`HEADER_SIZE`), the (maybe compressed) payload, and a trailer::

    magic 0xCE | format | serializer id | flags | stored_at: float64 | expires_at: float64 (0 = none)
    payload
    CRC-32 of all the above, 4 bytes little-endian       (format 2, the default)
    or BLAKE2b-128 MAC of all the above, keyed, 16 bytes  (format 3, with ``signing_key=``)

Flags: the low 4 bits name the compression, 0x10 marks a payload that needs the serializer's extensions; any
other bit makes the blob corrupt. The trailer goes last so that a hit verifies the CRC in one pass over the
blob as stored (the CRC of data followed by its CRC is a constant), with no copy.

Because the deadline travels with the value, every driver enforces TTL the same way, and a blob written by
another serializer or format is recognised as foreign (a miss, dropped) rather than mis-decoded. Stored bytes
are untrusted input: :meth:`Codec.decode` raises only :class:`~cachekit.errors.CorruptEntryError` for any
input (``tests/unit/test_codec_fuzz.py`` and ``cachekit bench --only fuzz`` hold it to that), never recurses
on the C stack, and never decompresses past ``max_value_bytes``.

msgpack round-trip table (the default serializer):

=============================  ====================================================================
value stored                   comes back as
=============================  ====================================================================
None, bool, int, float, str    the same (ints must fit in 64 bits, else the value is not cached)
bytes, bytearray, memoryview   bytes
list / tuple                   list / tuple
dict                           dict (key order kept)
set / frozenset                set / frozenset
datetime (naive or aware)      datetime (aware ones keep their UTC offset as a fixed timezone)
date, time, timedelta          date, time, timedelta
Decimal, UUID                  Decimal, UUID
subclasses of dict/list/str,   their base type (OrderedDict -> dict, a str subclass -> str)
int and float
Enum members, other objects,   not cached: SerializationError, the read returns the fresh value
values nested > 1,000 deep
=============================  ====================================================================

``json`` keeps only JSON types (tuples come back as lists); ``pickle`` keeps everything but executes code on
read, so it is opt-in and warns: never use it on a cache that others can write to.
"""

from __future__ import annotations

from ._codec import CHECKSUM_SIZE, DEFAULT_MAX_VALUE_BYTES, HEADER_SIZE, MAC_SIZE, Codec
from ._serializers import (
    MAX_DEPTH,
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
    make_serializer,
)

__all__ = [
    "CHECKSUM_SIZE",
    "DEFAULT_MAX_VALUE_BYTES",
    "HEADER_SIZE",
    "MAC_SIZE",
    "MAX_DEPTH",
    "Codec",
    "JsonSerializer",
    "MsgpackSerializer",
    "PickleSerializer",
    "Serializer",
    "make_serializer",
]
