"""S3 plumbing shared by the S3 cache driver and :mod:`cachekit.s3db`: error codes and batched deletes.

No caching logic lives here, so the document store stays independent of the caching layers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["DELETE_BATCH", "NOT_FOUND_CODES", "delete_in_batches", "error_code", "is_not_found"]

#: DeleteObjects accepts at most 1000 keys a call.
DELETE_BATCH = 1000
#: Codes S3 (and S3-compatible servers) use for a missing object.
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def error_code(exc: Any) -> str:
    """The S3 error code of a botocore ``ClientError`` (``"Unknown"`` when it carries none)."""
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def is_not_found(exc: Any) -> bool:
    """True when a ``ClientError`` says the object does not exist."""
    return error_code(exc) in NOT_FOUND_CODES


def delete_in_batches(
    client: Any,
    bucket: str,
    keys: Iterable[str],
    failure: Callable[[list[dict[str, Any]], int], Exception],
) -> int:
    """DeleteObjects in batches of 1000 as keys arrive (a huge listing is never held in memory).

    :param failure: builds the exception to raise from a batch's per-key errors and the batch's size.
    :returns: how many keys were deleted.
    """
    deleted = 0
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) == DELETE_BATCH:
            deleted += _delete_batch(client, bucket, batch, failure)
            batch = []
    if batch:
        deleted += _delete_batch(client, bucket, batch, failure)
    return deleted


def _delete_batch(
    client: Any, bucket: str, batch: list[str], failure: Callable[[list[dict[str, Any]], int], Exception]
) -> int:
    response = client.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True}
    )
    errors = response.get("Errors") or []
    if errors:
        raise failure(errors, len(batch))
    return len(batch)
