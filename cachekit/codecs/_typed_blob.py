"""The stored form of a typed return value inside a msgpack payload (see :mod:`cachekit._typed_returns`).

A ``@cached`` function whose return annotation names a dataclass, a Pydantic model, an attrs class, an enum ...
stores its value as one msgpack extension (code :data:`EXT_TYPED`) inside the usual envelope (CRC or MAC,
deadline, compression, ``max_value_bytes``): 8 bytes of *schema fingerprint* followed by the value encoded for
that schema (msgspec's msgpack, or Pydantic's JSON). The namespace's codec never interprets it: decoding gives a
:class:`TypedBlob`, an immutable holder that only the decorated function, which knows the schema, turns back
into its objects. Nothing in the bytes names a class to build, so a planted blob cannot choose what is
constructed.
"""

from __future__ import annotations

from typing import Any, Final

from .._types import MISSING

__all__ = ["EXT_TYPED", "FINGERPRINT_SIZE", "TypedBlob"]

#: The msgpack extension code of a typed value.
EXT_TYPED: Final = 10
#: Bytes of schema fingerprint before a typed payload.
FINGERPRINT_SIZE: Final = 8


class TypedBlob:
    """A typed value's fingerprint and payload; ``value`` is the source's object when made by a load.

    ``kept`` is set by the first hit of a blob the memory reader holds (``(copier, decoded object)``): later hits
    of that very blob get a copy instead of a decode (see :func:`cachekit._typed_returns.model_copier`).
    """

    __slots__ = ("fingerprint", "kept", "payload", "value")

    def __init__(self, fingerprint: bytes, payload: bytes, value: Any = MISSING) -> None:
        self.fingerprint, self.payload, self.value = fingerprint, payload, value
        self.kept: Any = None

    @classmethod
    def from_ext(cls, data: bytes) -> TypedBlob:
        """Rebuild from an extension's data (a blob too short to hold a fingerprint is corrupt)."""
        if len(data) < FINGERPRINT_SIZE:
            raise ValueError(f"a typed value needs {FINGERPRINT_SIZE} bytes of fingerprint; got {len(data)}")
        return cls(bytes(data[:FINGERPRINT_SIZE]), bytes(data[FINGERPRINT_SIZE:]))

    def ext_data(self) -> bytes:
        """The extension's data: fingerprint, then payload."""
        return self.fingerprint + self.payload

    def __repr__(self) -> str:
        return f"<TypedBlob {self.fingerprint.hex()} {len(self.payload)} bytes>"
