"""The S3 driver: one object per cache entry in a bucket, through boto3.

Entries live at ``{key_prefix}{key}``. A ``key_prefix`` behaves as a folder: a non-empty one that does not
end with ``/`` gets one appended (``"cache"`` becomes ``"cache/"``), so clearing this driver's keys never
touches a neighbour's ``"cache-l2/..."`` objects. An empty ``key_prefix`` means the whole bucket is the cache
(and ``clear()`` empties it): only use that with a bucket of its own.

Expiry: S3 has no per-object TTL, so ``set`` stores the deadline as object metadata
(``x-amz-meta-cachekit-expires-at``, epoch seconds) and ``get`` deletes an object it meets past its deadline
and reports a miss. Objects nobody reads again stay until ``clear`` or an S3 lifecycle rule removes them;
``keys`` and ``size`` come from listings, which carry no metadata, so they count such objects too.

The boto3 client is created at the first operation, not in ``__init__``: an application boots while S3 is
down, and boto3's credential chain may itself call the network.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
    NoCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from cachekit._options import reject_unknown_options
from cachekit._redact import redact, redact_library_logs, redact_url
from cachekit._s3 import delete_in_batches, error_code, is_not_found
from cachekit._types import MISSING, Missing, check_key, normalize_ttl
from cachekit.breaker import DEFAULT_COOLDOWN, DEFAULT_FAILURES, CircuitBreaker, Verdict
from cachekit.drivers._limits import oversized
from cachekit.drivers._s3_config import (
    check_bucket,
    check_optional_str,
    check_prefix,
    client_kwargs,
    normalize_key_prefix,
    reject_client_options,
)
from cachekit.drivers.base import NETWORK, Driver
from cachekit.errors import ConfigurationError, DriverError, DriverUnavailable
from cachekit.generations import GenerationStore

__all__ = ["S3Driver"]

#: The metadata name under which the deadline is stored (S3 sends it as ``x-amz-meta-cachekit-expires-at``).
EXPIRES_AT_METADATA = "cachekit-expires-at"
#: Objects that are generation records, not entries (``generations/polled.py``, ``TokenGenerations``).
_GENERATIONS = "~gen/"

_CLIENT_OPTIONS = (
    "endpoint_url", "region", "aws_access_key_id", "aws_secret_access_key", "aws_session_token",
    "connect_timeout", "read_timeout", "max_attempts",
)
_OPTIONS = ("bucket", "key_prefix", "client", *_CLIENT_OPTIONS, "breaker_failures", "breaker_cooldown", "clock")
#: S3 error codes that mean the service (not the request) failed: they count towards the circuit breaker.
_SERVICE_FAILURES = frozenset({"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "503", "500"})


def _verdict(exc: BaseException) -> Verdict:
    """How a failed S3 operation counts for the circuit breaker (timeouts trip it at once)."""
    cause = exc.__cause__ if isinstance(exc, DriverError) and exc.__cause__ is not None else exc
    if isinstance(cause, (ReadTimeoutError, ConnectTimeoutError)):
        return "trip"
    if isinstance(cause, (BotoConnectionError, HTTPClientError)):
        return "failure"
    if isinstance(cause, ClientError) and (
        error_code(cause) in _SERVICE_FAILURES
        or int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0) >= 500
    ):
        return "failure"
    return "ok"


class S3Driver(Driver):
    """Cache entries as objects in an S3 bucket (or any S3-compatible store: MinIO, moto, Ceph...).

    Pass a ready boto3 S3 ``client`` (it is used as is and left open by :meth:`close`), or let the driver
    build one from ``endpoint_url``, ``region`` and credentials (``None``: boto3's usual chain of environment,
    config files and instance roles), with short timeouts and few retries so that a dead S3 endpoint does not
    stall reads for long.

    E.g.::

        driver = S3Driver(bucket="my-app-cache", key_prefix="cache/", region="eu-west-1")
        driver.set("users/1", b"...", ttl=300)
        driver.get("users/1")            # b"..." (or MISSING once the 300 s have passed)
        driver.clear("users/")           # list + batched DeleteObjects under cache/users/

        Cache(driver="s3", config={"bucket": "my-app-cache", "endpoint_url": "http://127.0.0.1:9000"})
    """

    name = "s3"
    sharing = NETWORK
    #: The most bytes a read fetches of an entry (set by the Caches on this driver; issue 19, item 6).
    max_read_bytes: int | None = None
    leaves_orphans = True  # unless a lifecycle rule expires objects: entries need a TTL
    blocking = True

    def __init__(
        self,
        *,
        bucket: str,
        key_prefix: str = "cache/",
        client: Any | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_attempts: int | None = None,
        max_bytes: int | None = None,
        breaker_failures: int = DEFAULT_FAILURES,
        breaker_cooldown: float = DEFAULT_COOLDOWN,
        clock: Callable[[], float] | None = None,
        **unknown: Any,
    ) -> None:
        """Validate the options; no network call happens here (the client is built at first use).

        ``connect_timeout``/``read_timeout`` are seconds (defaults 3 and 10), ``max_attempts`` counts the
        first try (default 2). ``clock`` returns wall-clock epoch seconds (default :func:`time.time`).
        Every operation goes through a :class:`~cachekit.breaker.CircuitBreaker` (:attr:`breaker`): a timeout
        opens it at once, ``breaker_failures`` transport or 5xx failures in a row open it; it then fails fast
        for ``breaker_cooldown`` seconds before one probe.
        """
        reject_unknown_options("S3 driver", unknown, _OPTIONS)
        if max_bytes is not None:
            raise ConfigurationError(
                "max_bytes is not supported by the S3 driver: "
                "use S3 lifecycle rules to bound the bucket's size"
            )
        self.bucket = check_bucket(bucket)
        self.key_prefix = normalize_key_prefix(key_prefix)
        self.endpoint_url = check_optional_str("endpoint_url", endpoint_url)
        if self.endpoint_url is not None and redact(self.endpoint_url) != self.endpoint_url:
            redact_library_logs()  # botocore logs the endpoint at DEBUG, credentials included (issue 19)
        self.region = check_optional_str("region", region)
        if clock is not None and not callable(clock):
            raise ConfigurationError(f"clock must be a callable returning epoch seconds; got {clock!r}")
        self._clock: Callable[[], float] = clock or time.time
        self._client: Any | None = client
        self._owns_client = client is None
        self._closed = False
        self._lock = threading.Lock()
        self.breaker = CircuitBreaker(
            f"S3 bucket {self.bucket!r} at {redact_url(self.endpoint_url) or 'the AWS endpoint'}",
            failures=breaker_failures, cooldown=breaker_cooldown,
        )
        if client is not None:
            reject_client_options(
                endpoint_url=endpoint_url, region=region, aws_access_key_id=aws_access_key_id,
                aws_secret_access_key=aws_secret_access_key, aws_session_token=aws_session_token,
                connect_timeout=connect_timeout, read_timeout=read_timeout, max_attempts=max_attempts,
            )
            self.client_kwargs: dict[str, Any] = {}
            return
        self.client_kwargs = client_kwargs(
            endpoint_url=self.endpoint_url, region=self.region, aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key, aws_session_token=aws_session_token,
            connect_timeout=connect_timeout, read_timeout=read_timeout, max_attempts=max_attempts,
        )

    # -- the client --------------------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client (built on first access when none was given)."""
        if self._closed:
            raise DriverError("this S3Driver is closed; create a new one")
        if self._client is None:
            with self._lock, self._mapped_errors("create the S3 client"):
                if self._client is None:
                    self._client = boto3.session.Session().client("s3", **self.client_kwargs)
        return self._client

    def close(self) -> None:
        """Close the client this driver built (a client given to it stays open). Safe to call twice."""
        with self._lock:
            client, self._client, self._closed = self._client, None, True
        if client is not None and self._owns_client:
            client.close()

    # -- single entries ----------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | Missing:
        found = self.get_with_expiry(key)
        return found if isinstance(found, Missing) else found[0]

    def get_with_expiry(self, key: str) -> tuple[bytes, float | None] | Missing:
        """Return ``(blob, deadline)`` from one GetObject; an object past its deadline is deleted: a miss."""
        object_key = self._object_key(key)
        with self._errors("get", key):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=object_key)
            except ClientError as exc:
                if is_not_found(exc):
                    return MISSING
                raise
            body = response["Body"]
            try:
                deadline = _deadline(response)
                if self._expired(deadline):
                    # Closing unread drops the connection instead of downloading a body nobody wants.
                    self.client.delete_object(Bucket=self.bucket, Key=object_key)
                    return MISSING
                limit = self.max_read_bytes
                if limit is not None and int(response.get("ContentLength") or 0) > limit:
                    raise oversized(key, limit)  # issue 19, item 6: closed unread
                blob: bytes = body.read() if limit is None else body.read(limit + 1)
                if limit is not None and len(blob) > limit:
                    raise oversized(key, limit)
            finally:
                body.close()
        return blob, deadline

    def get_prefix(self, key: str, size: int) -> bytes | Missing:
        """At most the first ``size`` bytes of ``key`` (one ranged GetObject): for small records such as the
        generation tokens, whose object another writer may have made arbitrarily large (issue 19)."""
        object_key = self._object_key(key)
        with self._errors("get", key):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=object_key, Range=f"bytes=0-{size - 1}")
            except ClientError as exc:
                if is_not_found(exc):
                    return MISSING
                if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                    return b""  # an empty object: no byte to range over
                raise
            body = response["Body"]
            try:
                if self._expired(_deadline(response)):
                    return MISSING
                blob: bytes = body.read(size)  # never more, even from a server that ignored the range
            finally:
                body.close()
        return blob

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        object_key = self._object_key(key)
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise TypeError(f"S3Driver stores bytes; got {type(blob).__name__} for key {key!r}")
        seconds = normalize_ttl(ttl)
        metadata = {} if seconds is None else {EXPIRES_AT_METADATA: repr(self._clock() + seconds)}
        with self._errors("set", key):
            self.client.put_object(
                Bucket=self.bucket, Key=object_key, Body=bytes(blob), Metadata=metadata,
                ContentType="application/octet-stream",
            )

    def delete(self, key: str) -> bool:
        """Delete ``key``; S3's DeleteObject does not say whether it existed, so a HeadObject asks first."""
        object_key = self._object_key(key)
        with self._errors("delete", key):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=object_key)
            except ClientError as exc:
                if is_not_found(exc):
                    return False
                raise
            self.client.delete_object(Bucket=self.bucket, Key=object_key)
        return not self._expired(_deadline(head))

    # -- batches -------------------------------------------------------------------------------------------

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete ``keys`` with batched DeleteObjects; HeadObject calls count those that were present."""
        present = [key for key in dict.fromkeys(keys) if self._exists(key)]
        with self._errors("delete_many"):
            self._delete_objects(self._object_key(key) for key in present)
        return len(present)

    def clear(self, prefix: str = "") -> int:
        """Delete every object under ``key_prefix + prefix``, 1000 a request; return how many were deleted."""
        full_prefix = self.key_prefix + check_prefix(prefix)
        with self._errors("clear", prefix):
            return self._delete_objects(self._list(full_prefix))

    def clear_many(self, prefixes: Iterable[str]) -> int:
        """Clear several prefixes with one listing under their common prefix (one each if none is shared)."""
        wanted = _outermost({check_prefix(prefix) for prefix in prefixes if prefix})
        if len(wanted) <= 1:
            return sum(self.clear(prefix) for prefix in wanted)
        common = os.path.commonprefix(wanted)  # noqa: RUF071 - keys are strings, not paths
        if not common:
            return sum(self.clear(prefix) for prefix in wanted)
        full_prefixes = tuple(self.key_prefix + prefix for prefix in wanted)
        with self._errors("clear_many", common):
            matching = (key for key in self._list(self.key_prefix + common) if key.startswith(full_prefixes))
            return self._delete_objects(matching)

    def get_many(self, keys: Sequence[str]) -> list[bytes | Missing]:
        # One GetObject per key: S3 has no multi-get, and a loop keeps errors and ordering simple.
        return [self.get(key) for key in keys]

    # -- listing -------------------------------------------------------------------------------------------

    def keys(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix``, without ``key_prefix``; expired objects not read since are included."""
        full_prefix = self.key_prefix + check_prefix(prefix)
        cut = len(self.key_prefix)
        with self._errors("keys", prefix):
            found = (object_key[cut:] for object_key in self._list(full_prefix))
            return [key for key in found if not key.startswith(_GENERATIONS)]

    def size(self) -> int:
        """Number of entries under ``key_prefix`` (generation records are not entries)."""
        records = self.key_prefix + _GENERATIONS
        with self._errors("size"):
            return sum(1 for key in self._list(self.key_prefix) if not key.startswith(records))

    def generation_store(self) -> GenerationStore:
        """A random token per bump in an object of the bucket, polled by every process (S3 has no increment)."""
        from cachekit.generations.polled import TokenGenerations

        return TokenGenerations(self)

    def stats(self) -> dict[str, Any]:
        """Configuration facts (the endpoint without credentials) and the circuit breaker's state; no I/O."""
        return {"driver": self.name, "bucket": self.bucket, "key_prefix": self.key_prefix,
                "endpoint_url": redact_url(self._endpoint_url()), "breaker": self.breaker.stats()}

    def __repr__(self) -> str:
        return f"<S3Driver bucket={self.bucket!r} key_prefix={self.key_prefix!r}>"

    # -- helpers -------------------------------------------------------------------------------------------

    def _object_key(self, key: str) -> str:
        return self.key_prefix + check_key(key)

    def _expired(self, deadline: float | None) -> bool:
        return deadline is not None and self._clock() >= deadline

    def _exists(self, key: str) -> bool:
        with self._errors("delete_many", key):
            try:
                head = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
            except ClientError as exc:
                if is_not_found(exc):
                    return False
                raise
        return not self._expired(_deadline(head))

    def _list(self, full_prefix: str) -> Iterator[str]:
        """Object keys under ``full_prefix``; the startswith check guards against odd S3-compatible stores."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
            for item in page.get("Contents", ()):
                object_key: str = item["Key"]
                if object_key.startswith(full_prefix):
                    yield object_key

    def _delete_objects(self, object_keys: Iterable[str]) -> int:
        """DeleteObjects in batches of 1000 as keys arrive; return how many were deleted."""
        return delete_in_batches(self.client, self.bucket, object_keys, self._delete_failure)

    def _delete_failure(self, errors: list[dict[str, Any]], batch_size: int) -> DriverError:
        first = errors[0]
        return DriverError(
            f"S3 DeleteObjects failed for {len(errors)} of {batch_size} objects in bucket "
            f"{self.bucket!r}; first: {first.get('Code')} on {first.get('Key')!r}: {first.get('Message')}"
        )

    def _endpoint_url(self) -> str | None:
        if self.endpoint_url is not None or self._client is None:
            return self.endpoint_url
        return str(self._client.meta.endpoint_url)

    @contextmanager
    def _errors(self, operation: str, key: str | None = None) -> Iterator[None]:
        """One backend operation: through the circuit breaker, with botocore's errors translated."""
        with self.breaker.guard(_verdict), self._mapped_errors(operation, key):
            yield

    @contextmanager
    def _mapped_errors(self, operation: str, key: str | None = None) -> Iterator[None]:
        """Translate botocore errors: transport failures -> DriverUnavailable, the rest -> DriverError."""
        where = f"S3 {operation}" + (f" {key!r}" if key is not None else "") + f" in bucket {self.bucket!r}"
        try:
            yield
        except (BotoConnectionError, HTTPClientError) as exc:
            raise DriverUnavailable(redact(
                f"{where} failed: cannot reach S3 at {self.endpoint_url or 'the AWS endpoint'} ({exc}); "
                "check that the endpoint is up and reachable"
            )) from exc
        except ClientError as exc:
            code = error_code(exc)
            hint = " (create the bucket or fix the bucket option)" if code == "NoSuchBucket" else ""
            raise DriverError(redact(f"{where} failed with S3 error {code}{hint}: {exc}")) from exc
        except NoCredentialsError as exc:
            raise DriverError(
                f"{where} failed: no AWS credentials found; pass aws_access_key_id/aws_secret_access_key, "
                "a client, or configure boto3's credential chain"
            ) from exc
        except BotoCoreError as exc:
            raise DriverError(redact(f"{where} failed: {exc}")) from exc


# -- per-call helpers ---------------------------------------------------------------------------------------


def _outermost(prefixes: set[str]) -> list[str]:
    """Drop prefixes covered by a shorter one (``a/b/`` is inside ``a/``), sorted."""
    kept: list[str] = []
    for prefix in sorted(prefixes):
        if not kept or not prefix.startswith(kept[-1]):
            kept.append(prefix)
    return kept


def _deadline(response: dict[str, Any]) -> float | None:
    """The stored deadline, or None (no expiry, or metadata written by something else)."""
    raw = (response.get("Metadata") or {}).get(EXPIRES_AT_METADATA)
    try:
        return None if raw is None else float(raw)
    except ValueError:
        return None
