"""botocore's DEBUG log never shows an ``endpoint_url``'s credentials (issue 19, item 7)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cachekit import Cache

pytestmark = pytest.mark.s3


def test_debug_logs_of_the_s3_client_mask_the_endpoint_password(
    moto_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = f"http://cachekit:s3cr3t-pw@127.0.0.1:{moto_server.port}"
    with caplog.at_level(logging.DEBUG):
        cache = Cache("s3", namespace="logs", config={
            "bucket": "cachekit-log-redaction", "endpoint_url": endpoint, "region": "us-east-1",
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
        })
        try:
            cache.get("k")
        except Exception:
            pass  # whatever the outcome, what was logged is checked
        cache.close()
    logged = "\n".join(
        record.getMessage() + (record.exc_text or "") for record in caplog.records
    ) + caplog.text
    assert "botocore" in caplog.text  # botocore did log at DEBUG
    assert "s3cr3t-pw" not in logged
