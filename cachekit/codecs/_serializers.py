"""Serializers: values to bytes and back (msgpack by default, json, opt-in pickle, or a function pair).

The msgpack decoder never recurses: tuples, sets and frozensets are stored as a msgpack array whose first
item is a one-byte marker ext, and they are rebuilt by msgpack's ``list_hook``, which msgpack calls from its
own iterative parser as each array completes. Nesting is therefore bounded by msgpack's fixed parse stack
(:data:`MAX_DEPTH`), never by the C stack: earlier formats packed each tuple as a separately packed blob and
decoded it by calling :func:`msgpack.unpackb` from the ``ext_hook``, and a few hundred nested tuples
overflowed the C stack (SIGSEGV) on the first hit.
"""

from __future__ import annotations

import datetime as _dt
import json
import pickle
import uuid
import warnings
import zoneinfo
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any, Final, Protocol, runtime_checkable

import msgpack

from ..errors import ConfigurationError, InsecureSerializerWarning
from ._typed_blob import EXT_TYPED, TypedBlob

__all__ = [
    "MAX_DEPTH",
    "JsonSerializer",
    "MsgpackSerializer",
    "PickleSerializer",
    "Serializer",
    "make_serializer",
]

#: Values nested deeper than this many containers are not cached (:class:`~cachekit.errors.SerializationError`
#: at encode time); msgpack's packer refuses about 1,023 levels, its parser about 1,024.
MAX_DEPTH: Final = 1000


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes and back. ``id`` is stored in each envelope (0 = a user-supplied pair)."""

    id: int

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


# -- msgpack ----------------------------------------------------------------------------------------------------

_EXT_DATETIME, _EXT_DATE, _EXT_TIME, _EXT_TIMEDELTA = 1, 2, 3, 4
_EXT_DECIMAL, _EXT_UUID, _EXT_TUPLE, _EXT_SET, _EXT_FROZENSET = 5, 6, 7, 8, 9


class _Marker:
    """The first item of an array that stands for a tuple, set or frozenset (see the module docstring)."""

    __slots__ = ("build", "name")

    def __init__(self, name: str, build: Callable[[Any], Any]) -> None:
        self.name, self.build = name, build

    def __repr__(self) -> str:
        return f"<cachekit {self.name} marker>"


_MARKERS = {_EXT_TUPLE: _Marker("tuple", tuple), _EXT_SET: _Marker("set", set),
            _EXT_FROZENSET: _Marker("frozenset", frozenset)}
_TUPLE_MARK = msgpack.ExtType(_EXT_TUPLE, b"")
_SET_MARK = msgpack.ExtType(_EXT_SET, b"")
_FROZENSET_MARK = msgpack.ExtType(_EXT_FROZENSET, b"")


def _msgpack_default(obj: Any) -> Any:
    # strict_types=True sends tuples and subclasses here, so a tuple is not silently turned into a list.
    if type(obj) is TypedBlob:  # a typed return value, already encoded for its schema (cachekit._typed_returns)
        return msgpack.ExtType(EXT_TYPED, obj.ext_data())
    if isinstance(obj, Enum):
        raise TypeError(f"Enum member {obj!r} would come back as its value; store .value or use pickle")
    if isinstance(obj, tuple):
        return [_TUPLE_MARK, *obj]
    if isinstance(obj, (set, frozenset)):
        return [_FROZENSET_MARK if isinstance(obj, frozenset) else _SET_MARK, *obj]
    if isinstance(obj, _dt.datetime):
        return msgpack.ExtType(_EXT_DATETIME, _datetime_text(obj).encode())
    if isinstance(obj, _dt.date):
        return msgpack.ExtType(_EXT_DATE, obj.isoformat().encode())
    if isinstance(obj, _dt.time):
        return msgpack.ExtType(_EXT_TIME, obj.isoformat().encode())
    if isinstance(obj, _dt.timedelta):
        return msgpack.ExtType(_EXT_TIMEDELTA, msgpack.packb([obj.days, obj.seconds, obj.microseconds]))
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


def _datetime_text(value: _dt.datetime) -> str:
    """ISO 8601, and ``[Zone/Key]`` after it for a ``zoneinfo`` zone (an offset alone loses the zone's rules,
    and in a repeated hour after DST ends an offset-only copy does not even compare equal)."""
    key = getattr(value.tzinfo, "key", None) if isinstance(value.tzinfo, zoneinfo.ZoneInfo) else None
    return value.isoformat() if key is None else f"{value.isoformat()}[{key}]"


def _datetime(text: str) -> _dt.datetime:
    iso, bracket, key = text.partition("[")
    value = _dt.datetime.fromisoformat(iso)
    if not bracket:
        return value
    if not key.endswith("]"):
        raise ValueError("a stored datetime's zone must be written [Zone/Key]")
    zone = zoneinfo.ZoneInfo(key[:-1])  # an unknown or malformed key raises: the entry is refused as corrupt
    naive = value.replace(tzinfo=None)
    for fold in (0, 1):  # the side of a repeated hour whose offset is the one stored
        zoned = naive.replace(tzinfo=zone, fold=fold)
        if zoned.utcoffset() == value.utcoffset():
            return zoned
    raise ValueError(f"a stored datetime's offset does not exist in zone {key[:-1]!r}")


def _timedelta(data: bytes) -> _dt.timedelta:
    # A leaf: the nested unpackb has no hooks, so it cannot recurse further.
    days, seconds, micros = msgpack.unpackb(data)
    if not all(type(part) is int for part in (days, seconds, micros)):
        raise ValueError("a stored timedelta must be three ints")
    return _dt.timedelta(days=days, seconds=seconds, microseconds=micros)


_LEAVES: dict[int, Callable[[bytes], Any]] = {
    _EXT_DATETIME: lambda data: _datetime(data.decode()),
    _EXT_DATE: lambda data: _dt.date.fromisoformat(data.decode()),
    _EXT_TIME: lambda data: _dt.time.fromisoformat(data.decode()),
    _EXT_TIMEDELTA: _timedelta,
    _EXT_DECIMAL: lambda data: Decimal(data.decode()),
    _EXT_UUID: lambda data: uuid.UUID(bytes=data),
    EXT_TYPED: TypedBlob.from_ext,  # decoded only by the @cached function that knows its schema
}


def _ext_hook(code: int, data: bytes) -> Any:
    leaf = _LEAVES.get(code)
    if leaf is not None:
        return leaf(data)
    marker = _MARKERS.get(code)
    if marker is not None:
        if data:
            raise ValueError(f"a {marker.name} marker carries no data; got {len(data)} bytes")
        return marker
    # An ext code cachekit never writes (issue 19): a corrupt entry, never a raw ExtType handed to the caller.
    raise ValueError(f"unknown msgpack ext type {code} ({len(data)} bytes): not written by this cachekit")


def _list_hook(items: list[Any]) -> Any:
    if items and type(items[0]) is _Marker:
        return items[0].build(items[1:])
    return items


def _unpack(data: bytes) -> Any:
    value = msgpack.unpackb(data, ext_hook=_ext_hook, list_hook=_list_hook, raw=False, strict_map_key=False)
    if type(value) is _Marker:
        raise ValueError(f"a stray {value.name} marker is not a value")
    return value


def _pack_with(default: Callable[[Any], Any]) -> Callable[[Any], bytes]:
    def pack(value: Any) -> bytes:
        try:
            return bytes(msgpack.packb(value, default=default, strict_types=True, use_bin_type=True, datetime=False))
        except ValueError as exc:
            if "recursion limit" not in str(exc):
                raise
            raise ValueError(f"the value is nested more than about {MAX_DEPTH} containers deep") from exc

    return pack


_pack = _pack_with(_msgpack_default)


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

        return _pack_with(default)(value), bool(used)

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
