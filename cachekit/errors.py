"""Errors and warnings raised by cachekit.

Every error derives from :class:`CacheError`, and each subclass also derives from the built-in exception that
callers already expect, so ``except ValueError`` keeps working::

    CacheError(Exception)
    ├── ConfigurationError(CacheError, ValueError)       bad option at construction time
    │   └── DriverNotFound(ConfigurationError, LookupError)   unknown driver / missing optional dependency
    ├── DriverError(CacheError)                          a driver operation failed (original in __cause__)
    │   └── DriverUnavailable(DriverError, ConnectionError)   the backend cannot be reached
    │       └── CircuitOpenError(DriverUnavailable)           skipped: its circuit breaker is open
    ├── CodecError(CacheError)
    │   ├── SerializationError(CodecError, TypeError)    a value cannot be encoded
    │   └── CorruptEntryError(CodecError, ValueError)    a stored blob cannot be decoded
    └── KeyResolverError(CacheError, LookupError)        no key resolver for an action

    CacheWarning(UserWarning)
    ├── UncacheableValueWarning(CacheWarning)            a result was returned but not stored
    └── InsecureSerializerWarning(CacheWarning)          pickle on a cache that others can write to

Read paths catch :class:`DriverError` and :class:`CodecError` and fail open (the wrapped function is called);
configuration and programming errors propagate. Every message says what was wrong and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "CacheWarning",
    "CircuitOpenError",
    "CodecError",
    "ConfigurationError",
    "CorruptEntryError",
    "DriverError",
    "DriverNotFound",
    "DriverUnavailable",
    "InsecureSerializerWarning",
    "KeyResolverError",
    "SerializationError",
    "UncacheableValueWarning",
]


class CacheError(Exception):
    """Base class of every cachekit error."""


class ConfigurationError(CacheError, ValueError):
    """An option is invalid; raised when the object is constructed, never at the first call."""


class DriverNotFound(ConfigurationError, LookupError):
    """A driver name is unknown, or its optional dependency is not installed."""


class DriverError(CacheError):
    """A driver operation failed. The original exception is the ``__cause__``."""


class DriverUnavailable(DriverError, ConnectionError):
    """The cache backend (Redis, S3, a directory) cannot be reached."""


class CircuitOpenError(DriverUnavailable):
    """The backend was not called: its circuit breaker is open after recent failures (it fails fast).

    See :mod:`cachekit.breaker`; the cool-down ends with one probe call.
    """


class CodecError(CacheError):
    """A value could not be encoded or a blob could not be decoded."""


class SerializationError(CodecError, TypeError):
    """A value cannot be serialized by the namespace's serializer."""


class CorruptEntryError(CodecError, ValueError):
    """A stored blob is not a valid cachekit envelope (corrupt, truncated, or written by another format)."""


class KeyResolverError(CacheError, LookupError):
    """No key resolver is registered for an action."""


class CacheWarning(UserWarning):
    """Base class of cachekit warnings: the setup works but is probably not what you want."""


class UncacheableValueWarning(CacheWarning):
    """A result could not be serialized; it was returned to the caller and not stored."""


class InsecureSerializerWarning(CacheWarning):
    """``pickle`` was chosen: anyone who can write to the cache can run code in your process."""
