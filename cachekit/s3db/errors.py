"""Errors raised by :mod:`cachekit.s3db`.

The store is standalone (it does not use the cache's error tree), and each error also derives from the
built-in exception that callers already catch::

    S3dbError(Exception)
    ├── NotFound(S3dbError, LookupError)          no document with that id (or no resource with that name)
    ├── AlreadyExists(S3dbError, ValueError)      insert of an id that is taken; a resource name that is taken
    ├── PartitionError(S3dbError, ValueError)     unknown partition, or partition_values that do not fit it
    └── ValidationError(S3dbError, ValueError)    bad argument: a name, id, document, URL, page number

Errors from S3 itself (``botocore.exceptions.ClientError`` such as ``NoSuchBucket``, connection errors) are
not wrapped: they propagate unchanged so that their codes stay visible. Every message says what was wrong and
how to fix it.
"""

from __future__ import annotations

__all__ = ["AlreadyExists", "NotFound", "PartitionError", "S3dbError", "ValidationError"]


class S3dbError(Exception):
    """Base class of every :mod:`cachekit.s3db` error."""


class NotFound(S3dbError, LookupError):
    """No document with this id in the resource (or partition), or no resource with this name."""


class AlreadyExists(S3dbError, ValueError):
    """``insert`` of an id that is already stored, or ``create_resource`` of a name already defined."""


class PartitionError(S3dbError, ValueError):
    """A partition name is not defined on the resource, or ``partition_values`` do not match its fields."""


class ValidationError(S3dbError, ValueError):
    """An argument is invalid: a resource name, an id, a document, a connection URL, a page or a size."""
