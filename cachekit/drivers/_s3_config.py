"""Building an S3 driver: option checks and the boto3 client's arguments (no network calls here)."""

from __future__ import annotations

from typing import Any, Final

from botocore.config import Config

from cachekit._redact import redact
from cachekit.errors import ConfigurationError

_DEFAULT_CONNECT_TIMEOUT: Final = 3.0
_DEFAULT_READ_TIMEOUT: Final = 10.0
# A cache read stuck on a dead endpoint delays the real read behind it: retry once, not 5 times.
_DEFAULT_MAX_ATTEMPTS: Final = 2


def check_bucket(bucket: object) -> str:
    if not isinstance(bucket, str) or not bucket.strip():
        raise ConfigurationError(f"bucket must be the name of an existing S3 bucket; got {bucket!r}")
    if bucket != bucket.strip() or "/" in bucket:
        raise ConfigurationError(f"bucket must be a bare bucket name (no spaces or '/'); got {bucket!r}")
    return bucket


def normalize_key_prefix(key_prefix: object) -> str:
    """A non-empty prefix acts as a folder: ``"cache"`` -> ``"cache/"``, so ``cache-l2/`` is not under it."""
    if not isinstance(key_prefix, str):
        raise ConfigurationError(f"key_prefix must be a string such as 'cache/'; got {key_prefix!r}")
    return key_prefix if not key_prefix or key_prefix.endswith("/") else key_prefix + "/"


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str):
        raise ConfigurationError(f"prefix must be a string ('' for every key); got {type(prefix).__name__}")
    return prefix


def check_optional_str(option: str, value: object) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise ConfigurationError(f"{option} must be a non-empty string or None; got {redact(repr(value))}")


def check_seconds(option: str, value: object, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ConfigurationError(f"{option} must be a positive number of seconds; got {value!r}")
    return float(value)


def reject_client_options(**options: Any) -> None:
    given = sorted(name for name, value in options.items() if value is not None)
    if given:
        raise ConfigurationError(
            f"{given} cannot be combined with client=: configure the boto3 client you pass instead, "
            "or drop client= and let the driver build one"
        )


def client_kwargs(
    *,
    endpoint_url: str | None,
    region: str | None,
    aws_access_key_id: str | None,
    aws_secret_access_key: str | None,
    aws_session_token: str | None,
    connect_timeout: object,
    read_timeout: object,
    max_attempts: object,
) -> dict[str, Any]:
    """Arguments for ``Session.client("s3", ...)``; ``None`` credentials leave boto3's chain in charge."""
    if (aws_access_key_id is None) != (aws_secret_access_key is None):
        raise ConfigurationError("give both aws_access_key_id and aws_secret_access_key, or neither")
    if aws_session_token is not None and aws_access_key_id is None:
        raise ConfigurationError("aws_session_token needs aws_access_key_id and aws_secret_access_key")
    if endpoint_url is not None and not endpoint_url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"endpoint_url must start with http:// or https://; got {redact(repr(endpoint_url))}"
        )
    attempts = _DEFAULT_MAX_ATTEMPTS if max_attempts is None else max_attempts
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ConfigurationError(f"max_attempts must be an int >= 1 (1 = no retry); got {max_attempts!r}")
    config = Config(
        connect_timeout=check_seconds("connect_timeout", connect_timeout, _DEFAULT_CONNECT_TIMEOUT),
        read_timeout=check_seconds("read_timeout", read_timeout, _DEFAULT_READ_TIMEOUT),
        retries={"total_max_attempts": attempts, "mode": "standard"},
    )
    kwargs: dict[str, Any] = {"config": config, "endpoint_url": endpoint_url, "region_name": region}
    if aws_access_key_id is not None:
        kwargs.update(aws_access_key_id=aws_access_key_id, aws_secret_access_key=aws_secret_access_key,
                      aws_session_token=aws_session_token)
    return kwargs
