"""Payload compression, and decompression that stops at a size cap (no decompression bombs).

A blob is decompressed only as its own header flags say (gzip, zlib or zstd), whatever the reading codec
would use for writing, and never into more than ``limit`` bytes: zlib streams are inflated with
``max_length`` (so at most ``limit + 1`` bytes are ever produced), and a zstd frame is refused when its
declared content size is over the cap, or decompressed into a buffer of at most ``limit`` bytes when the size
is not declared; the zstd window is capped too (:data:`ZSTD_MAX_WINDOW`), since a frame can ask for a window
of up to 2 GiB.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from collections.abc import Callable
from typing import Any, Final

from ..errors import ConfigurationError

__all__ = ["COMPRESSIONS", "GZIP", "NONE", "ZLIB", "ZSTD", "ZSTD_MAX_WINDOW", "compressor", "decompress"]

NONE, GZIP, ZLIB, ZSTD = 0, 1, 2, 3
#: Compression names and the ids stored in an envelope's flags.
COMPRESSIONS: Final = {"gzip": GZIP, "zlib": ZLIB, "zstd": ZSTD}
#: The largest zstd window a stored frame may use: the levels cachekit writes (1-9) use at most 4 MiB.
ZSTD_MAX_WINDOW: Final = 1 << 24


class PayloadTooLarge(ValueError):
    """A payload decompresses to more than the codec's ``max_value_bytes``."""


def compressor(name: str | None, level: int) -> tuple[int, Callable[[bytes], bytes]]:
    """``(id, compress)`` for a compression name (``None``: no compression)."""
    if name is None:
        return NONE, bytes
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in COMPRESSIONS:
        raise ConfigurationError(f"unknown compression {name!r}; use one of {sorted(COMPRESSIONS)} or None")
    if not isinstance(level, int) or not 1 <= level <= 9:
        raise ConfigurationError(f"compression_level must be an int from 1 to 9; got {level!r}")
    if key == "gzip":
        return GZIP, functools.partial(gzip.compress, compresslevel=level, mtime=0)
    if key == "zlib":
        return ZLIB, functools.partial(zlib.compress, level=level)
    zstandard = _zstandard()
    return ZSTD, zstandard.ZstdCompressor(level=level).compress


def decompress(compression: int, payload: bytes, limit: int) -> bytes:
    """The decompressed ``payload``; :class:`PayloadTooLarge` past ``limit`` bytes, ``ValueError`` if corrupt."""
    if compression == GZIP:
        return _inflate(payload, limit, wbits=31)
    if compression == ZLIB:
        return _inflate(payload, limit, wbits=15)
    if compression == ZSTD:
        return _unzstd(payload, limit)
    raise ValueError(f"unknown compression id {compression}")


def _inflate(payload: bytes, limit: int, *, wbits: int) -> bytes:
    inflater = zlib.decompressobj(wbits=wbits)
    out = inflater.decompress(payload, limit + 1)
    if len(out) > limit:
        raise PayloadTooLarge(f"the payload inflates to more than max_value_bytes={limit}")
    if not inflater.eof:
        raise ValueError("the compressed stream is truncated")
    if inflater.unused_data:
        raise ValueError(f"{len(inflater.unused_data)} bytes follow the compressed stream")
    return out


def _unzstd(payload: bytes, limit: int) -> bytes:
    try:
        zstandard = _zstandard()
    except ConfigurationError as exc:
        raise ValueError(f"a zstd payload, but {exc}") from exc
    try:
        declared = zstandard.frame_content_size(payload)
        if declared > limit:
            raise PayloadTooLarge(f"the zstd frame declares {declared} bytes, over max_value_bytes={limit}")
        # ZstdDecompressor objects are not thread-safe; one per (rare) zstd read costs a few microseconds.
        decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        return bytes(decompressor.decompress(payload, max_output_size=limit))
    except zstandard.ZstdError as exc:
        raise ValueError(f"zstd: {exc}") from exc


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise ConfigurationError("compression='zstd' needs zstandard: pip install 'cachekit-orm[zstd]'") from exc
    return zstandard
