"""Serializers, compression and the versioned envelope that every stored blob carries.

A blob is a fixed 20-byte header followed by the (maybe compressed) payload::

    magic 0xCE | version 1 | serializer id | flags | stored_at: float64 | expires_at: float64 (0 = none)

(flags: the low 4 bits name the compression, 0x10 marks a payload that needs the serializer's extensions.)

Because the deadline travels with the value, every driver enforces TTL the same way, and a blob written by
another serializer or format version is recognised as foreign (a miss, dropped) rather than mis-decoded.

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
Enum members, other objects    not cached: SerializationError, the read returns the fresh value
=============================  ====================================================================

``json`` keeps only JSON types (tuples come back as lists); ``pickle`` keeps everything but executes code on
read, so it is opt-in and warns: never use it on a cache that others can write to.
"""

from __future__ import annotations

import datetime as _dt
import functools
import gzip
import json
import pickle
import struct
import time
import uuid
import warnings
import zlib
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import msgpack

from ._types import MISSING, Clock
from .errors import ConfigurationError, CorruptEntryError, InsecureSerializerWarning, SerializationError

__all__ = [
    "Codec",
    "JsonSerializer",
    "MsgpackSerializer",
    "PickleSerializer",
    "Serializer",
    "make_serializer",
]

_HEADER = struct.Struct("<BBBBdd")
HEADER_SIZE = _HEADER.size
_MAGIC = 0xCE
_VERSION = 1

_NO_COMPRESSION, _GZIP, _ZLIB, _ZSTD = 0, 1, 2, 3
_COMPRESSION_MASK = 0x0F
# The serializer's full decoding path is needed: msgpack ext types, or text from a serializer function.
_EXTENDED = 0x10
_COMPRESSIONS = {"gzip": _GZIP, "zlib": _ZLIB, "zstd": _ZSTD}


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes and back. ``id`` is stored in each envelope (0 = a user-supplied pair)."""

    id: int

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


# -- msgpack ----------------------------------------------------------------------------------------------------

_EXT_DATETIME, _EXT_DATE, _EXT_TIME, _EXT_TIMEDELTA = 1, 2, 3, 4
_EXT_DECIMAL, _EXT_UUID, _EXT_TUPLE, _EXT_SET, _EXT_FROZENSET = 5, 6, 7, 8, 9


def _msgpack_default(obj: Any) -> Any:
    # strict_types=True sends tuples and subclasses here, so a tuple is not silently turned into a list.
    if isinstance(obj, Enum):
        raise TypeError(f"Enum member {obj!r} would come back as its value; store .value or use pickle")
    if isinstance(obj, tuple):
        return msgpack.ExtType(_EXT_TUPLE, _pack(list(obj)))
    if isinstance(obj, (set, frozenset)):
        code = _EXT_FROZENSET if isinstance(obj, frozenset) else _EXT_SET
        return msgpack.ExtType(code, _pack(list(obj)))
    if isinstance(obj, _dt.datetime):
        return msgpack.ExtType(_EXT_DATETIME, obj.isoformat().encode())
    if isinstance(obj, _dt.date):
        return msgpack.ExtType(_EXT_DATE, obj.isoformat().encode())
    if isinstance(obj, _dt.time):
        return msgpack.ExtType(_EXT_TIME, obj.isoformat().encode())
    if isinstance(obj, _dt.timedelta):
        return msgpack.ExtType(_EXT_TIMEDELTA, _pack([obj.days, obj.seconds, obj.microseconds]))
    if isinstance(obj, Decimal):
        return msgpack.ExtType(_EXT_DECIMAL, str(obj).encode())
    if isinstance(obj, uuid.UUID):
        return msgpack.ExtType(_EXT_UUID, obj.bytes)
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, list):
        return list(obj)
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    raise TypeError(f"cannot serialize {type(obj).__qualname__} with msgpack")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_TUPLE:
        return tuple(_unpack(data))
    if code == _EXT_SET:
        return set(_unpack(data))
    if code == _EXT_FROZENSET:
        return frozenset(_unpack(data))
    if code == _EXT_DATETIME:
        return _dt.datetime.fromisoformat(data.decode())
    if code == _EXT_DATE:
        return _dt.date.fromisoformat(data.decode())
    if code == _EXT_TIME:
        return _dt.time.fromisoformat(data.decode())
    if code == _EXT_TIMEDELTA:
        days, seconds, micros = _unpack(data)
        return _dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    if code == _EXT_DECIMAL:
        return Decimal(data.decode())
    if code == _EXT_UUID:
        return uuid.UUID(bytes=data)
    return msgpack.ExtType(code, data)


_pack: Callable[[Any], bytes] = functools.partial(
    msgpack.packb, default=_msgpack_default, strict_types=True, use_bin_type=True, datetime=False
)
_unpack: Callable[[bytes], Any] = functools.partial(
    msgpack.unpackb, ext_hook=_ext_hook, raw=False, strict_map_key=False
)


class MsgpackSerializer:
    """The default serializer: compact, fast, and safe to read from a shared cache. See the module table."""

    id = 1

    def dumps(self, value: Any) -> bytes:
        return _pack(value)

    def dumps_flagged(self, value: Any) -> tuple[bytes, bool]:
        """``(payload, uses_extensions)``: the codec records the flag so plain payloads decode faster."""
        used: list[bool] = []

        def default(obj: Any) -> Any:
            used.append(True)
            return _msgpack_default(obj)

        payload = msgpack.packb(value, default=default, strict_types=True, use_bin_type=True, datetime=False)
        return bytes(payload), bool(used)

    def loads(self, data: bytes) -> Any:
        return _unpack(data)

    #: For payloads without extension types: msgpack parses keyword arguments on every call (~170 ns), so these
    #: decode with none. A non-str map key makes it raise ValueError; the codec then retries with :meth:`loads`.
    loads_plain = staticmethod(msgpack.unpackb)


class JsonSerializer:
    """JSON (UTF-8). Only JSON types round-trip; tuples come back as lists."""

    id = 2

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class PickleSerializer:
    """pickle (protocol 5). Round-trips nearly anything, but reading a blob can execute code.

    Use it only on a cache no one else can write to; constructing it emits :class:`InsecureSerializerWarning`.
    """

    id = 3

    def __init__(self) -> None:
        warnings.warn(
            "the pickle serializer executes code when it reads a blob: use it only on a cache that no other "
            "process or user can write to (not a shared Redis or S3 cache); prefer 'msgpack'",
            InsecureSerializerWarning,
            stacklevel=3,
        )

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=5)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)  # opt-in only, and warned about at construction


class _CallablePair:
    """A user-supplied ``serializer``/``deserializer`` pair; a ``str`` result is stored as UTF-8."""

    id = 0

    def __init__(self, dumps: Callable[[Any], bytes | str], loads: Callable[[Any], Any]) -> None:
        self._dumps, self._loads = dumps, loads

    def dumps(self, value: Any) -> bytes:
        out = self._dumps(value)
        if isinstance(out, str):
            return out.encode()
        if isinstance(out, (bytes, bytearray, memoryview)):
            return bytes(out)
        raise TypeError(f"the serializer must return bytes or str, not {type(out).__name__}")

    def dumps_flagged(self, value: Any) -> tuple[bytes, bool]:
        """``(payload, was_text)``: a ``str`` result is stored as UTF-8 and given back as ``str``."""
        out = self._dumps(value)
        if isinstance(out, str):
            return out.encode(), True
        if isinstance(out, (bytes, bytearray, memoryview)):
            return bytes(out), False
        raise TypeError(f"the serializer must return bytes or str, not {type(out).__name__}")

    def loads(self, data: bytes) -> Any:
        """Decode a payload the serializer returned as ``str`` (the envelope's flag says so)."""
        return self._loads(bytes(data).decode())

    def loads_plain(self, data: bytes) -> Any:
        """Decode a payload the serializer returned as ``bytes``."""
        return self._loads(data)


_NAMED: dict[str, Callable[[], Serializer]] = {
    "msgpack": MsgpackSerializer,
    "json": JsonSerializer,
    "pickle": PickleSerializer,
}


def make_serializer(serializer: object = None, deserializer: object = None) -> Serializer:
    """Build a serializer from a name (``"msgpack"``, ``"json"``, ``"pickle"``), an object, or a function pair.

    E.g.::

        make_serializer("json")
        make_serializer(lambda v: json.dumps(v).encode(), json.loads)
    """
    if callable(serializer) and not isinstance(serializer, type) and not isinstance(serializer, Serializer):
        if not callable(deserializer):
            raise ConfigurationError("a serializer function needs a matching deserializer function; pass both")
        return _CallablePair(serializer, deserializer)
    if deserializer is not None:
        raise ConfigurationError("deserializer is only used with a serializer function; pass both as functions")
    if isinstance(serializer, type):
        raise ConfigurationError(f"serializer must be an instance, not the class: pass {serializer.__name__}()")
    if serializer is None:
        return MsgpackSerializer()
    if isinstance(serializer, str):
        factory = _NAMED.get(serializer.strip().lower())
        if factory is None:
            raise ConfigurationError(
                f"unknown serializer {serializer!r}; use one of {sorted(_NAMED)} or a serializer/deserializer pair"
            )
        return factory()
    if isinstance(serializer, Serializer):
        return serializer
    raise ConfigurationError(
        f"serializer must be a name, an object with dumps/loads/id, or a function; got {serializer!r}"
    )


# -- the codec --------------------------------------------------------------------------------------------------


class Codec:
    """Encodes values into enveloped blobs and back; compresses payloads above ``compression_threshold`` bytes.

    E.g.::

        codec = Codec("msgpack", compression="gzip", compression_threshold=1024)
        blob = codec.encode({"a": 1}, ttl=60)
        codec.decode(blob)   # {'a': 1}; MISSING once expired

    :param serializer: ``"msgpack"`` (default), ``"json"``, ``"pickle"``, a :class:`Serializer`, or a function
        (with ``deserializer``).
    :param compression: ``"gzip"`` (default), ``"zlib"``, ``"zstd"`` (needs ``zstandard``) or ``None``.
    :param compression_threshold: payloads of at least this many bytes are compressed; ``None`` disables.
    :param compression_level: 1 by default: it gets most of level 6's size win for about a third of the CPU.
    :param clock: wall clock for ``stored_at``/``expires_at`` (``time.time``).
    """

    def __init__(
        self,
        serializer: object = None,
        *,
        deserializer: object = None,
        compression: str | None = "gzip",
        compression_threshold: int | None = None,
        compression_level: int = 1,
        clock: Clock | None = None,
    ) -> None:
        self.serializer = make_serializer(serializer, deserializer)
        self._sid = self.serializer.id
        self._dumps_flagged: Callable[[Any], tuple[bytes, bool]] = getattr(
            self.serializer, "dumps_flagged", lambda value: (self.serializer.dumps(value), True)
        )
        self._loads = self.serializer.loads
        self._loads_plain: Callable[[bytes], Any] = getattr(self.serializer, "loads_plain", self._loads)
        self._clock: Clock = clock or time.time
        self._threshold = _check_threshold(compression_threshold)
        self._compression_id, self._compress = _compressor(compression, compression_level)
        self.compression = compression

    def encode(self, value: Any, ttl: float | None) -> bytes:
        """Serialize ``value`` into an envelope that expires ``ttl`` seconds from now (``None``: never).

        :raises SerializationError: the value cannot be serialized (the caller keeps it uncached).
        """
        try:
            payload, extended = self._dumps_flagged(value)
        except Exception as exc:
            raise SerializationError(
                f"cannot serialize a {type(value).__qualname__} with {type(self.serializer).__name__}: {exc}. "
                "Return plain data (dict/list/str/...), or choose another serializer for this namespace"
            ) from exc
        compression = _NO_COMPRESSION
        if self._threshold is not None and len(payload) >= self._threshold:
            compression, payload = self._compression_id, self._compress(payload)
        now = self._clock()
        expires_at = 0.0 if ttl is None else now + ttl
        flags = compression | (_EXTENDED if extended else 0)
        return _HEADER.pack(_MAGIC, _VERSION, self._sid, flags, now, expires_at) + payload

    def decode(self, blob: bytes) -> Any:
        """Return the value in ``blob``, or :data:`~cachekit.MISSING` when it has expired.

        :raises CorruptEntryError: the blob is not an envelope this codec wrote (truncated, foreign, corrupt).
        """
        try:
            magic, version, sid, flags, _stored, expires_at = _HEADER.unpack_from(blob)
        except (struct.error, TypeError) as exc:
            raise CorruptEntryError(f"not a cachekit envelope ({len(blob)} bytes)") from exc
        if magic != _MAGIC or version != _VERSION or sid != self._sid:
            raise CorruptEntryError(
                f"envelope magic/version/serializer {magic:#x}/{version}/{sid} does not match "
                f"{_MAGIC:#x}/{_VERSION}/{self._sid}: written by another format or serializer"
            )
        if expires_at and expires_at <= self._clock():
            return MISSING
        payload = blob[HEADER_SIZE:]
        try:
            if flags & _COMPRESSION_MASK:
                payload = _decompress(flags & _COMPRESSION_MASK, payload)
            return self._loads(payload) if flags & _EXTENDED else self._loads_plain(payload)
        except Exception as exc:
            if self._loads_plain is not self._loads and isinstance(exc, ValueError):
                try:
                    return self._loads(payload)
                except Exception:
                    pass
            raise CorruptEntryError(f"stored payload does not decode: {exc}") from exc

    @staticmethod
    def expires_at(blob: bytes) -> float | None:
        """The deadline recorded in ``blob`` (``None`` for no expiry), without decoding the payload."""
        try:
            *_, expires_at = _HEADER.unpack_from(blob)
        except struct.error as exc:
            raise CorruptEntryError("not a cachekit envelope") from exc
        return float(expires_at) or None


def _check_threshold(threshold: int | None) -> int | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise ConfigurationError(f"compression_threshold must be a whole number of bytes >= 0; got {threshold!r}")
    return threshold


def _compressor(name: str | None, level: int) -> tuple[int, Callable[[bytes], bytes]]:
    if name is None:
        return _NO_COMPRESSION, bytes
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _COMPRESSIONS:
        raise ConfigurationError(f"unknown compression {name!r}; use one of {sorted(_COMPRESSIONS)} or None")
    if not isinstance(level, int) or not 1 <= level <= 9:
        raise ConfigurationError(f"compression_level must be an int from 1 to 9; got {level!r}")
    if key == "gzip":
        return _GZIP, functools.partial(gzip.compress, compresslevel=level, mtime=0)
    if key == "zlib":
        return _ZLIB, functools.partial(zlib.compress, level=level)
    try:
        import zstandard
    except ImportError as exc:
        raise ConfigurationError("compression='zstd' needs zstandard: pip install 'cachekit-orm[zstd]'") from exc
    return _ZSTD, zstandard.ZstdCompressor(level=level).compress


def _decompress(compression: int, payload: bytes) -> bytes:
    if compression == _GZIP:
        return zlib.decompress(payload, wbits=31)
    if compression == _ZLIB:
        return zlib.decompress(payload)
    if compression == _ZSTD:
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompress(payload))
    raise ValueError(f"unknown compression id {compression}")
