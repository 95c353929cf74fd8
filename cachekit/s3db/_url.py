"""The connection URL of :meth:`Database.connect <cachekit.s3db.Database.connect>`: :class:`S3Url`.

The home of the ``s3://KEY:SECRET@bucket/prefix?endpoint=...&region=...`` syntax: parsing, URL-decoding of the
credentials, and the errors for a malformed URL, which never echo a secret. :class:`S3Url` is importable from
:mod:`cachekit.s3db` and :mod:`cachekit.s3db.database` as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from .._redact import redact
from .errors import ValidationError

__all__ = ["S3Url"]

_URL_OPTIONS = frozenset({"endpoint", "region"})


@dataclass(frozen=True)
class S3Url:
    """The parts of an ``s3://KEY:SECRET@bucket/prefix?endpoint=...&region=...`` URL.

    Key and secret are URL-decoded (write ``/`` in a secret as ``%2F``); both are optional, and without them
    boto3's usual credential chain applies. ``prefix``, ``endpoint`` and ``region`` are optional too.

    E.g.::

        S3Url.parse("s3://AKIA:se%2Fcret@my-bucket/app/v1?endpoint=http://127.0.0.1:5055&region=eu-west-1")
        # -> S3Url(bucket="my-bucket", prefix="app/v1", access_key="AKIA", endpoint="http://127.0.0.1:5055",
        #          region="eu-west-1")   (secret_key="se/cret" is kept out of the repr)
    """

    bucket: str
    prefix: str = ""
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    region: str | None = None

    @classmethod
    def parse(cls, url: str) -> S3Url:
        """Parse a connection URL.

        :raises ValidationError: for another scheme, no bucket, a key without a secret, or unknown or repeated
            query parameters (only ``endpoint`` and ``region`` are understood).
        """
        if not isinstance(url, str):
            raise ValidationError(
                f"the connection URL must be a str like 's3://KEY:SECRET@bucket/prefix', not {type(url).__name__}"
            )
        parts = urlsplit(url)
        if parts.scheme != "s3":
            raise ValidationError(
                f"connection URL scheme must be 's3' (s3://KEY:SECRET@bucket/prefix), not {parts.scheme!r} "
                f"(in {redact(url)!r})"
            )
        # Split the netloc ourselves: urlsplit().hostname lower-cases, and a bucket name has no port.
        userinfo, _, bucket = parts.netloc.rpartition("@")
        if not bucket or ":" in bucket:
            # Without the '@', "KEY:SECRET" lands here: never echo it.
            shown = repr(bucket) if ":" not in bucket else "'KEY:***' (credentials without '@bucket'?)"
            raise ValidationError(
                f"connection URL needs a bucket name after '@' or 's3://' (s3://KEY:SECRET@bucket/prefix), "
                f"got {redact(shown)}"
            )
        access_key, secret_key = None, None
        if userinfo:
            raw_key, has_secret, raw_secret = userinfo.partition(":")
            if not raw_key or not has_secret:
                raise ValidationError("connection URL credentials must be KEY:SECRET (URL-encode ':', '/', '@')")
            access_key, secret_key = unquote(raw_key), unquote(raw_secret)
        options = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
        unknown = sorted(set(options) - _URL_OPTIONS)
        if unknown:
            raise ValidationError(
                f"connection URL has unknown parameters {redact(unknown)}; only 'endpoint' and 'region' are known"
            )
        repeated = sorted(name for name, values in options.items() if len(values) > 1)
        if repeated:
            raise ValidationError(f"connection URL repeats the parameters {repeated!r}; give each once")
        return cls(
            bucket=bucket,
            prefix=unquote(parts.path).strip("/"),
            access_key=access_key,
            secret_key=secret_key,
            endpoint=options.get("endpoint", [None])[0] or None,
            region=options.get("region", [None])[0] or None,
        )
