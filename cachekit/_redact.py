"""Credential redaction: the one helper every message, repr and stats dict goes through.

Secrets reach messages in three shapes, and :func:`redact` masks all three with ``***``:

* a URL with userinfo: ``redis://:pw@host``, ``s3://AKIA:secret@bucket``, ``http://user:pw@minio:9000``
  keep their user name and lose the password (``redis://:***@host``);
* a password in a query string: ``?password=pw`` becomes ``?password=***``;
* a secret-looking option in a dict or keyword repr: ``'password': 'pw'``, ``aws_secret_access_key='x'``,
  ``"signing_key": b"..."`` (any name containing ``password``, ``secret``, ``token`` or ``signing_key``).

E.g.::

    redact("cannot reach redis://:hunter2@10.0.0.5:6379/0")   # 'cannot reach redis://:***@10.0.0.5:6379/0'
    redact_url("s3://AKIA:s3cret@bucket/app")                   # 's3://AKIA:***@bucket/app'
    redact_value({"url": "redis://:pw@h", "password": "pw"})    # {'url': 'redis://:***@h', 'password': '***'}
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["MASK", "RedactingFilter", "redact", "redact_library_logs", "redact_url", "redact_value"]

#: What a secret is replaced with.
MASK: Final = "***"

# scheme://user:password@ : the password is everything up to the last '@' before the host part.
_URL_USERINFO: Final = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/@:'\"]*:)(?P<secret>[^\s/'\"]*)@")
_QUERY_PASSWORD: Final = re.compile(r"(?P<head>[?&](?:password|secret|token)=)(?P<secret>[^&\s'\"]*)", re.I)
_SECRET_NAME: Final = r"[a-zA-Z_]*(?:password|secret|token|signing_key)[a-zA-Z_]*"
# 'password': 'x'  /  "password": b"x"  /  password='x'  /  password=x (up to a separator)
_KEYWORD_SECRET: Final = re.compile(
    rf"(?P<head>['\"]?\b{_SECRET_NAME}['\"]?\s*[:=]\s*)"
    r"(?P<secret>b?'[^']*'|b?\"[^\"]*\"|[^\s,)}\]&]+)",
    re.I,
)
_SECRET_KEY: Final = re.compile(rf"^{_SECRET_NAME}$", re.I)


def redact(text: object) -> str:
    """``str(text)`` with every password, secret or token it contains replaced by ``***``."""
    result = str(text)
    result = _URL_USERINFO.sub(lambda m: f"{m['head']}{MASK}@", result)
    result = _QUERY_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", result)
    return _KEYWORD_SECRET.sub(_mask_keyword, result)


def redact_url(url: str | None) -> str | None:
    """A URL without its password (``None`` stays ``None``)."""
    return None if url is None else redact(url)


def redact_value(value: Any) -> Any:
    """A copy of a stats value (dicts, lists, strings) with secrets masked; other values are returned as is.

    A mapping key that names a secret (``password``, ``aws_secret_access_key``, ...) has its whole value masked.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            key: (MASK if value[key] is not None and _SECRET_KEY.match(str(key)) else redact_value(value[key]))
            for key in value
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item) for item in value)
    return value


def _mask_keyword(match: re.Match[str]) -> str:
    secret = match["secret"]
    if secret in ("None", "''", '""', MASK, f"'{MASK}'", f'"{MASK}"'):
        return match[0]
    quote = secret[-1] if secret[-1:] in ("'", '"') else ""
    return f"{match['head']}{quote}{MASK}{quote}"


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's message and traceback (it never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True  # a record that cannot be formatted is logging's to report
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


#: The loggers of boto3/botocore/urllib3 that write an ``endpoint_url`` (with its userinfo) at DEBUG.
LIBRARY_LOGGERS: Final = (
    "botocore.endpoint", "botocore.regions", "botocore.client", "botocore.hooks", "botocore.httpsession",
    "botocore.retryhandler", "botocore.auth", "botocore.parsers", "botocore.awsrequest", "botocore.utils",
    "boto3.resources.action", "urllib3.connectionpool", "cachekit",
)
_FILTER = RedactingFilter()
_INSTALLED = threading.Lock()


def redact_library_logs() -> None:
    """Mask secrets in what the S3 client's libraries log (issue 19, item 7: botocore's DEBUG log showed an
    ``endpoint_url``'s credentials); idempotent, touches only the loggers in :data:`LIBRARY_LOGGERS`."""
    with _INSTALLED:
        for name in LIBRARY_LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
