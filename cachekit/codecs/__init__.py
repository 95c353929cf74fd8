"""Serializers, compression and the versioned envelope that every stored blob carries.

A blob is a fixed header followed by the (maybe compressed) payload. The default, checked envelope (24 bytes
of header, :data:`HEADER_SIZE`)::

    magic 0xCE | format 2 | crc32: uint32 | serializer id | flags | stored_at: float64 | expires_at: float64

and, with ``signing_key=``, the signed one (36 bytes, :data:`SIGNED_HEADER_SIZE`)::

    magic 0xCE | format 3 | MAC: 16 bytes | serializer id | flags | stored_at: float64 | expires_at: float64

The CRC-32, or the keyed BLAKE2b-128 MAC, covers every byte after it (the rest of the header and the payload).
Flags: the low 4 bits name the compression, 0x10 marks a payload that needs the serializer's extensions; any
other bit makes the blob corrupt.

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

from ._codec import DEFAULT_MAX_VALUE_BYTES, HEADER_SIZE, SIGNED_HEADER_SIZE, Codec
from ._serializers import (
    MAX_DEPTH,
    JsonSerializer,
    MsgpackSerializer,
    PickleSerializer,
    Serializer,
    make_serializer,
)

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "HEADER_SIZE",
    "MAX_DEPTH",
    "SIGNED_HEADER_SIZE",
    "Codec",
    "JsonSerializer",
    "MsgpackSerializer",
    "PickleSerializer",
    "Serializer",
    "make_serializer",
]
