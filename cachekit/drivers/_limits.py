"""Bounded entry reads (issue 19, item 6): a driver reads at most ``max_read_bytes`` of an entry.

The codec refuses a blob over ``max_value_bytes`` plus its envelope, but only after the driver has read it
whole: 200 MiB of junk planted under a key cost a reader 400 MiB. A :class:`~cachekit.Cache` therefore tells its
driver the most it will ever accept (:func:`limit_reads`), and the drivers that can read a bounded amount do so
(Redis ``GETRANGE``, S3 the object's ``Content-Length`` before its body, the filesystem the row's ``length()``
before its value), refusing a larger entry with :func:`oversized`: a corrupt entry, counted, the read served
uncached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._types import MISSING, Missing
from ..errors import CorruptEntryError

__all__ = ["bounded_blobs", "limit_reads", "oversized"]


def limit_reads(driver: Any, limit: int) -> None:
    """Let ``driver`` (and the tiers of a multi-tier driver) read at most ``limit`` bytes of an entry; the
    largest limit of the Caches sharing a driver wins (none of them may lose an entry it would accept)."""
    for tier in getattr(driver, "_tiers", ()):
        limit_reads(tier.driver, limit)
    if hasattr(driver, "max_read_bytes"):
        current = driver.max_read_bytes
        driver.max_read_bytes = limit if current is None else max(current, limit)


def oversized(key: str, limit: int) -> CorruptEntryError:
    """The error for an entry larger than ``limit`` bytes (refused before it is read)."""
    return CorruptEntryError(
        f"the entry under {key!r} is over {limit} bytes (max_value_bytes plus the envelope): refused without "
        "reading it; another writer may have stored it, or raise max_value_bytes if values this large are expected"
    )


def bounded_blobs(keys: Sequence[str], blobs: Sequence[bytes], limit: int) -> list[bytes | Missing]:
    """The answers of a batch of bounded reads (at most ``limit`` + 1 bytes each, ``b""`` for an absent key):
    :data:`~cachekit.MISSING` or the blob; an entry over ``limit`` fails the batch with :func:`oversized`, as
    in the drivers whose ``get_many`` is a loop of ``get`` (the read is served from the source, counted)."""
    found: list[bytes | Missing] = []
    for key, blob in zip(keys, blobs, strict=True):
        if not blob:
            found.append(MISSING)
        elif len(blob) > limit:
            raise oversized(key, limit)
        else:
            found.append(blob)
    return found
