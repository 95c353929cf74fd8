"""Authenticated generation values (issue 19, item 3): a MAC keyed from the signing key, bound to the scope.

With a ``signing_key``, an entry's MAC covers its full key, generations included; but whoever can write the
generation store (``SET`` a Redis counter, ``PUBLISH`` on its channel, delete an S3 token, write the
``~generations`` directory) could still move a generation back to the value an older entry was stored under,
and that entry would be served. So a signed namespace's generation values carry a MAC too: a keyed BLAKE2b-128
(personalised ``cachekit-gen-v1``, a different domain from the envelopes') over the namespace, the scope and the
value, length-prefixed. A value or notification whose MAC matches neither the signing key nor a verify key is
counted and dropped, never adopted; a replayed *older* signed value is refused by the high-water mark of every
process that saw a higher one (:class:`~cachekit.generations.view.GenerationView`).

Text form (Redis counters and notifications): ``"{value}.{mac hex}"``; bytes form (S3 tokens, filesystem
records): the value as 8 big-endian bytes followed by the 16-byte MAC.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["SEALED_SIZE", "GenerationSeal"]

_PERSON = b"cachekit-gen-v1"
_MAC_SIZE: Final = 16
#: Bytes of a sealed value in bytes form.
SEALED_SIZE: Final = 8 + _MAC_SIZE
_LARGEST = (1 << 63) - 1


def _raw(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else bytes(key)


class GenerationSeal:
    """Seals and opens the generation values of signed namespaces (see the module docstring)."""

    __slots__ = ("_bases",)

    def __init__(self, signing_key: bytes | str, verify_keys: Iterable[bytes | str] = ()) -> None:
        keys = [_raw(signing_key), *(_raw(k) for k in verify_keys)]
        self._bases = [hashlib.blake2b(key=k, digest_size=_MAC_SIZE, person=_PERSON) for k in keys]

    @classmethod
    def from_options(cls, options: Any) -> GenerationSeal | None:
        """The seal of a namespace's options (``signing_key``, ``verify_keys``), or ``None`` when unsigned."""
        key = options.get("signing_key")
        if key is None:
            return None
        return cls(key, options.get("verify_keys") or ())

    def _mac(self, base: Any, namespace: str, scope: str, value: int) -> bytes:
        mac = base.copy()
        for part in (namespace.encode(), scope.encode()):
            mac.update(len(part).to_bytes(4, "big"))
            mac.update(part)
        mac.update(value.to_bytes(8, "big", signed=True))
        return mac.digest()  # type: ignore[no-any-return]

    def _verified(self, namespace: str, scope: str, value: int, mac: bytes) -> bool:
        return any(hmac.compare_digest(self._mac(b, namespace, scope, value), mac) for b in self._bases)

    def seal_text(self, namespace: str, scope: str, value: int) -> str:
        """``"{value}.{mac}"``: a Redis counter or a notification line's value."""
        return f"{value}.{self._mac(self._bases[0], namespace, scope, value).hex()}"

    def open_text(self, namespace: str, scope: str, text: str | bytes) -> int | None:
        """The value of a sealed text, or ``None`` when it is not one this seal (or a verify key) made."""
        if isinstance(text, bytes):
            try:
                text = text.decode("ascii")
            except UnicodeDecodeError:
                return None
        number, dot, mac_hex = text.partition(".")
        if not dot or len(mac_hex) != 2 * _MAC_SIZE or not number.isascii() or not number.isdigit():
            return None
        if len(number) > 19:
            return None
        try:
            mac = bytes.fromhex(mac_hex)
        except ValueError:
            return None
        value = int(number)
        if not 0 < value <= _LARGEST or not self._verified(namespace, scope, value, mac):
            return None
        return value

    def seal_bytes(self, namespace: str, scope: str, value: int) -> bytes:
        """8 big-endian bytes of ``value`` and its MAC (an S3 token, a filesystem record)."""
        return value.to_bytes(8, "big") + self._mac(self._bases[0], namespace, scope, value)

    def open_bytes(self, namespace: str, scope: str, blob: bytes) -> int | None:
        """The value of :meth:`seal_bytes`'s output, or ``None`` when it is not one this seal made."""
        if len(blob) != SEALED_SIZE:
            return None
        value = int.from_bytes(blob[:8], "big")
        if not 0 < value <= _LARGEST or not self._verified(namespace, scope, value, bytes(blob[8:])):
            return None
        return value
