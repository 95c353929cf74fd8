"""Option checks and SQLite key ranges shared by the two filesystem drivers."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from cachekit.errors import ConfigurationError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "EVICTION_POLICIES",
    "check_bool",
    "check_directory",
    "check_max_bytes",
    "check_policy",
    "check_prefix",
    "check_timeout",
    "outermost",
    "prefix_range",
]

#: cachekit's eviction policy names and the diskcache policies they map onto.
EVICTION_POLICIES: Mapping[str, str] = {
    "lru": "least-recently-used",
    "fifo": "least-recently-stored",
    "lfu": "least-frequently-used",
}
#: The size limit when ``max_bytes`` is not given: diskcache's own default, 1 GiB.
DEFAULT_MAX_BYTES = 1 << 30


# -- validation ----------------------------------------------------------------------------------------------


def check_directory(directory: object, create: object) -> Path:
    create = check_bool("create_directory", create)
    if directory is None:
        raise ConfigurationError(
            "the filesystem driver needs a directory: pass directory='/path/to/cache' "
            "(created when missing)"
        )
    if not isinstance(directory, (str, os.PathLike)) or not os.fspath(directory):
        raise ConfigurationError(f"directory must be a non-empty str or os.PathLike; got {directory!r}")
    path = Path(os.path.abspath(Path(os.fspath(directory)).expanduser()))
    if path.exists() and not path.is_dir():
        raise ConfigurationError(f"cache directory {str(path)!r} is not a directory; pick another path")
    if not path.exists():
        if not create:
            raise ConfigurationError(
                f"cache directory {str(path)!r} does not exist and create_directory=False; "
                "create it first or pass create_directory=True"
            )
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"cannot create cache directory {str(path)!r}: {exc}") from exc
    return path


def check_max_bytes(max_bytes: object) -> int:
    if max_bytes is None:
        return DEFAULT_MAX_BYTES
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
        raise ConfigurationError(
            f"max_bytes must be a positive int (bytes), or None for diskcache's default of 1 GiB; "
            f"got {max_bytes!r}"
        )
    return max_bytes


def check_policy(policy: object) -> str:
    normalized = policy.strip().lower() if isinstance(policy, str) else policy
    if normalized not in EVICTION_POLICIES:
        raise ConfigurationError(
            f"eviction_policy must be one of {sorted(EVICTION_POLICIES)}; got {policy!r}"
        )
    return str(normalized)


def check_bool(option: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{option} must be True or False; got {value!r}")
    return value


def check_timeout(timeout: object) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < float("inf"):
        raise ConfigurationError(f"timeout must be a positive number of seconds; got {timeout!r}")
    return float(timeout)


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise ConfigurationError(f"prefix must be a string (empty for all keys); got {prefix!r}")
    return prefix


# -- keys and folders ----------------------------------------------------------------------------------------


def prefix_range(prefix: str) -> tuple[str, str | bytes]:
    """``(lo, hi)``: the TEXT keys starting with ``prefix`` are exactly ``lo <= key < hi`` in SQLite.

    SQLite compares TEXT as UTF-8 bytes, which orders strings as Python orders code points, so the first
    string past every extension of ``prefix`` is ``prefix`` with its last character incremented. A BLOB sorts
    after all TEXT, so ``b""`` bounds the empty prefix.
    """
    head = prefix
    while head:
        following = ord(head[-1]) + 1
        if following <= 0x10FFFF:
            if 0xD800 <= following <= 0xDFFF:  # surrogates cannot appear in stored (UTF-8) keys
                following = 0xE000
            return prefix, head[:-1] + chr(following)
        head = head[:-1]
    return prefix, b""


def outermost(prefixes: Iterable[str]) -> list[str]:
    """Drop prefixes that another given prefix already covers."""
    kept: list[str] = []
    for prefix in sorted(set(prefixes)):
        if not kept or not prefix.startswith(kept[-1]):
            kept.append(prefix)
    return kept
