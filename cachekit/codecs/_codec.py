"""The codec: values into checked (or signed) envelopes and back, refusing anything it did not write."""

from __future__ import annotations

import hashlib
import hmac
import struct
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any, Final

from .._types import MISSING, Clock
from ..errors import ConfigurationError, CorruptEntryError, SerializationError
from ._compression import NONE, PayloadTooLarge, compressor, decompress
from ._serializers import make_serializer

__all__ = ["CHECKSUM_SIZE", "DEFAULT_MAX_VALUE_BYTES", "HEADER_SIZE", "MAC_SIZE", "Codec"]

_MAGIC = 0xCE
# The format byte: a CRC-32 trailer; a keyed BLAKE2b trailer over the envelope (3, before issue 19, no longer
# accepted: such an entry could be copied under any key); the same MAC over the entry's key and the envelope (4).
_CHECKED, _UNBOUND, _SIGNED = 2, 3, 4
_KEY_LENGTH = struct.Struct("<I")
_HEADER = struct.Struct("<BBBBdd")  # magic, format, serializer, flags, stored_at, expires_at
_CRC = struct.Struct("<I")
#: Bytes before the payload.
HEADER_SIZE: Final = _HEADER.size
#: Bytes after the payload of a checked envelope (the default): its CRC-32, little-endian.
CHECKSUM_SIZE: Final = _CRC.size
#: Bytes after the payload of a signed envelope (``signing_key=``): a BLAKE2b-128 MAC.
MAC_SIZE: Final = 16
# The CRC-32 of any data followed by its own CRC-32 (little-endian) is this constant, so a checked envelope is
# verified with one pass over the blob as stored, without slicing the trailer off first.
_CRC_RESIDUE = 0x2144DF1C
_crc32 = zlib.crc32
#: The default cap on a value's serialized (decompressed) size: 64 MiB.
DEFAULT_MAX_VALUE_BYTES: Final = 64 << 20

_COMPRESSION_MASK = 0x0F
_EXTENDED = 0x10  # the serializer's full decoding path is needed (msgpack ext types, text from a function)
_KNOWN_FLAGS = _COMPRESSION_MASK | _EXTENDED
_MAC_PERSON = b"cachekit-env-v3"  # BLAKE2b personalisation: these MACs mean nothing outside cachekit envelopes


class Codec:
    """Encodes values into enveloped blobs and back; compresses payloads above ``compression_threshold`` bytes.

    Every envelope ends with a CRC-32 of everything before it, so a flipped bit is a
    :class:`~cachekit.errors.CorruptEntryError` (a miss, and the entry is dropped) rather than a different
    value. With ``signing_key`` the CRC is replaced by a keyed BLAKE2b MAC: only writers that hold the key can
    produce an entry this codec accepts, which is what a cache shared across trust boundaries needs (another
    tenant of the Redis or bucket can still delete entries, never plant them).

    E.g.::

        codec = Codec("msgpack", compression="gzip", compression_threshold=1024)
        blob = codec.encode({"a": 1}, ttl=60)
        codec.decode(blob)   # {'a': 1}; MISSING once expired

        signed = Codec(signing_key=b"0123456789abcdef-new", verify_keys=[b"0123456789abcdef-old"])

    :param serializer: ``"msgpack"`` (default), ``"json"``, ``"pickle"``, a :class:`Serializer`, or a function
        (with ``deserializer``).
    :param compression: ``"gzip"`` (default), ``"zlib"``, ``"zstd"`` (needs ``zstandard``) or ``None``.
    :param compression_threshold: payloads of at least this many bytes are compressed; ``None`` disables.
    :param compression_level: 1 by default: it gets most of level 6's size win for about a third of the CPU.
    :param clock: wall clock for ``stored_at``/``expires_at`` (``time.time``).
    :param max_value_bytes: the largest serialized value: bigger values are not stored
        (:class:`~cachekit.errors.SerializationError`), and a stored payload that decompresses to more is
        corrupt; default 64 MiB (:data:`DEFAULT_MAX_VALUE_BYTES`).
    :param signing_key: sign every envelope with this key (``bytes`` or ``str``, 16 to 64 bytes) and accept
        only envelopes signed with it or with one of ``verify_keys``. The MAC also covers the cache key the
        envelope is stored under (``encode``/``decode``'s ``key``; the namespace passes the full key, with its
        namespace and generations), so a valid entry copied under another key is refused.
    :param verify_keys: older keys still accepted on read, for key rotation (see the README).
    """

    # Slots: the hit path reads eight attributes per decode, and slot reads stay specialised however the
    # instance is used (an instance dict can fall back to a hashed lookup per attribute).
    __slots__ = (
        "_clock", "_compress", "_compression_id", "_dumps_flagged", "_format", "_loads", "_loads_plain", "_macs",
        "_payload", "_sid", "_threshold", "_trusted", "compression", "max_value_bytes", "overhead", "serializer",
        "signed",
    )

    def __init__(
        self,
        serializer: object = None,
        *,
        deserializer: object = None,
        compression: str | None = "gzip",
        compression_threshold: int | None = None,
        compression_level: int = 1,
        clock: Clock | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        signing_key: bytes | str | None = None,
        verify_keys: Iterable[bytes | str] = (),
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
        self._compression_id, self._compress = compressor(compression, compression_level)
        self.compression = compression
        self.max_value_bytes = _check_max_value_bytes(max_value_bytes)
        self._macs = _mac_bases(signing_key, verify_keys)
        self.signed = bool(self._macs)
        self._format = _SIGNED if self.signed else _CHECKED
        trailer = MAC_SIZE if self.signed else CHECKSUM_SIZE
        self._payload = slice(HEADER_SIZE, -trailer)  # built once: a hit slices with it
        #: Bytes of an envelope that are not payload (header and trailer).
        self.overhead = HEADER_SIZE + trailer
        self._trusted = False

    def trust_local_blobs(self) -> bool:
        """Decode without verifying checksums or envelope deadlines: for a store whose blobs never leave the
        process (the plain memory driver), where both are redundant. Refused (``False``) for a signing codec.

        A blob held by the memory driver is an immutable ``bytes`` this codec wrote moments before, in this
        process: no disk, wire or other writer can alter it, so a CRC-32 over it on every hit guards nothing;
        and the driver drops an entry at its own deadline, the same TTL from the same clock. A blob that is not
        an envelope of this codec is still refused (header check), and the payload is still decoded safely.
        """
        if self.signed:
            return False
        self._trusted = True
        return True

    def __repr__(self) -> str:
        signed = ", signed" if self.signed else ""  # never the keys
        return f"<Codec {type(self.serializer).__name__} compression={self.compression!r}{signed}>"

    def encode(self, value: Any, ttl: float | None, key: str | None = None) -> bytes:
        """Serialize ``value`` into an envelope that expires ``ttl`` seconds from now (``None``: never).

        A signing codec binds the envelope to ``key`` (``None`` is the empty key): only ``decode`` with the same
        key accepts it. A checked (unsigned) envelope ignores ``key``.

        :raises SerializationError: the value cannot be serialized, or is over ``max_value_bytes`` (the caller
            keeps it uncached).
        """
        try:
            payload, extended = self._dumps_flagged(value)
        except Exception as exc:
            raise SerializationError(
                f"cannot serialize a {type(value).__qualname__} with {type(self.serializer).__name__}: {exc}. "
                "Return plain data (dict/list/str/...), or choose another serializer for this namespace"
            ) from exc
        if len(payload) > self.max_value_bytes:
            raise SerializationError(
                f"a {type(value).__qualname__} serializes to {len(payload)} bytes, over max_value_bytes="
                f"{self.max_value_bytes}: cache smaller results, or raise max_value_bytes"
            )
        compression = NONE
        if self._threshold is not None and len(payload) >= self._threshold:
            compression, payload = self._compression_id, self._compress(payload)
        now = self._clock()
        flags = compression | (_EXTENDED if extended else 0)
        body = _HEADER.pack(_MAGIC, self._format, self._sid, flags, now, 0.0 if ttl is None else now + ttl) + payload
        if self.signed:
            return body + _mac(self._macs[0], body, key)
        return body + _CRC.pack(zlib.crc32(body))

    def decode(self, blob: bytes, key: str | None = None) -> Any:
        """Return the value in ``blob``, or :data:`~cachekit.MISSING` when it has expired.

        A signing codec accepts ``blob`` only when its MAC covers ``key`` (the key it was encoded with).

        :raises CorruptEntryError: the blob is not an envelope this codec wrote or accepts (truncated, foreign,
            corrupt, unsigned or signed with an unknown key, too large once decompressed).
        """
        try:
            magic, form, sid, flags, _stored, expires_at = _HEADER.unpack_from(blob)
        except (struct.error, TypeError) as exc:
            raise CorruptEntryError(f"not a cachekit envelope ({_size(blob)})") from exc
        if magic != _MAGIC or form != self._format or sid != self._sid:
            raise self._foreign(magic, form, sid)
        if not self._trusted:  # see trust_local_blobs
            if self.signed:
                self._authenticate(blob, key)
            elif _crc32(blob) != _CRC_RESIDUE:
                raise CorruptEntryError("the envelope's checksum does not match: the stored bytes were altered")
            if expires_at and expires_at <= self._clock():
                return MISSING
        payload = blob[self._payload]
        if flags & ~_EXTENDED:  # compressed, or flags this version does not know
            payload = self._inflate(flags, payload)
        try:
            return self._loads(payload) if flags & _EXTENDED else self._loads_plain(payload)
        except Exception as exc:
            if self._loads_plain is not self._loads and isinstance(exc, ValueError):
                try:
                    return self._loads(payload)
                except Exception:
                    pass
            raise CorruptEntryError(f"stored payload does not decode: {_brief(exc)}") from exc

    def decode_at(self, key: str, blob: bytes) -> Any:
        """``decode(blob, key)`` with the key first: the shape of the namespace's keyed decoders."""
        return self.decode(blob, key)

    @staticmethod
    def expires_at(blob: bytes) -> float | None:
        """The deadline recorded in ``blob`` (``None`` for no expiry), without decoding the payload."""
        try:
            expires_at = _HEADER.unpack_from(blob)[-1]
        except (struct.error, TypeError) as exc:
            raise CorruptEntryError("not a cachekit envelope") from exc
        return float(expires_at) or None

    def _inflate(self, flags: int, payload: bytes) -> bytes:
        if flags & ~_KNOWN_FLAGS:
            raise CorruptEntryError(f"unknown envelope flags {flags:#04x}: written by a newer cachekit, or corrupt")
        try:
            return decompress(flags & _COMPRESSION_MASK, payload, self.max_value_bytes)
        except PayloadTooLarge as exc:
            raise CorruptEntryError(f"stored payload refused: {exc}") from exc
        except Exception as exc:
            raise CorruptEntryError(f"stored payload does not decompress: {_brief(exc)}") from exc

    def _authenticate(self, blob: bytes, key: str | None) -> None:
        signed, tag = memoryview(blob)[:-MAC_SIZE], blob[-MAC_SIZE:]
        for base in self._macs:
            if len(signed) >= HEADER_SIZE and hmac.compare_digest(_mac(base, signed, key), tag):
                return
        raise CorruptEntryError(
            "the envelope's signature matches neither signing_key nor verify_keys for this key: it was altered, "
            "planted, copied from another key, or signed with a retired key"
        )

    def _foreign(self, magic: int, form: int, sid: int) -> CorruptEntryError:
        if magic == _MAGIC and sid == self._sid and form == _UNBOUND:
            return CorruptEntryError(
                "a signed envelope not bound to its key (written before cachekit bound MACs to keys): refused"
            )
        if magic == _MAGIC and sid == self._sid and form in (_CHECKED, _SIGNED):
            if self.signed:
                return CorruptEntryError("an unsigned envelope, but this codec has a signing_key: refused")
            return CorruptEntryError("a signed envelope, but this codec has no signing_key to verify it: refused")
        return CorruptEntryError(
            f"envelope magic/format/serializer {magic:#x}/{form}/{sid} does not match "
            f"{_MAGIC:#x}/{self._format}/{self._sid}: written by another format or serializer"
        )


def _mac(base: Any, data: bytes | memoryview, key: str | None) -> bytes:
    """The MAC of ``key`` (length-prefixed, so no two keys and envelopes concatenate alike) and ``data``."""
    mac = base.copy()
    raw = b"" if key is None else key.encode("utf-8", "surrogatepass")
    mac.update(_KEY_LENGTH.pack(len(raw)))
    mac.update(raw)
    mac.update(data)
    return bytes(mac.digest())


def _mac_bases(signing_key: object, verify_keys: object) -> list[Any]:
    """Keyed BLAKE2b states, ``signing_key``'s first; copied per call (cheaper than keying each time)."""
    if isinstance(verify_keys, (str, bytes)) or not isinstance(verify_keys, Iterable):
        raise ConfigurationError(  # never the value: a lone key passed as a string is a secret
            f"verify_keys must be a list of keys (bytes or str); got a {type(verify_keys).__name__}"
        )
    retired = list(verify_keys)
    if signing_key is None:
        if retired:
            raise ConfigurationError("verify_keys needs a signing_key: pass the current key as signing_key")
        return []
    keys = [_check_key(signing_key, "signing_key"), *(_check_key(key, "verify_keys item") for key in retired)]
    return [hashlib.blake2b(key=key, digest_size=MAC_SIZE, person=_MAC_PERSON) for key in keys]


def _check_key(key: object, what: str) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    if not isinstance(raw, bytes) or not 16 <= len(raw) <= 64:
        shown = f"{len(raw)} bytes" if isinstance(raw, bytes) else type(key).__name__
        raise ConfigurationError(
            f"{what} must be bytes or str of 16 to 64 bytes (got {shown}); e.g. secrets.token_bytes(32)"
        )
    return raw


def _check_threshold(threshold: int | None) -> int | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise ConfigurationError(f"compression_threshold must be a whole number of bytes >= 0; got {threshold!r}")
    return threshold


def _check_max_value_bytes(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigurationError(f"max_value_bytes must be a whole number of bytes >= 1; got {limit!r}")
    return limit


def _size(blob: object) -> str:
    try:
        return f"{len(blob)} bytes"  # type: ignore[arg-type]
    except TypeError:
        return type(blob).__name__


def _brief(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."
