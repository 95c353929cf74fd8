"""The servers the benchmark talks to: the machine's Redis, and a moto S3 server it starts on loopback.

moto runs in a subprocess rather than in a thread of this process: in-process it would share the GIL with the
timed client and the figures would measure the two fighting over it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import Any

__all__ = ["LOOPBACK", "Services"]

LOOPBACK = "127.0.0.1"
_MOTO_START_SECONDS = 30.0
_SCAN_BATCH = 500


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


class Services:
    """Lazily started servers and clients, all closed by :meth:`close`.

    Each ``*_or_reason`` method returns the thing, or a string saying why it is unavailable (the section then
    skips its rows with that note).

    E.g.::

        with Services(redis_url="redis://127.0.0.1:6379/0") as services:
            client = services.redis_or_reason()
    """

    def __init__(self, *, redis_url: str) -> None:
        self.redis_url = redis_url
        #: Every Redis key the benchmark writes starts with this, so cleanup never touches anything else.
        self.redis_prefix = f"cachekit-bench:{os.getpid()}:{uuid.uuid4().hex[:8]}:"
        self._redis: Any = None
        self._redis_reason: str | None = None
        self._moto: subprocess.Popen[bytes] | None = None
        self._moto_endpoint: str | None = None
        self._moto_reason: str | None = None
        self._clients: list[Any] = []

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- redis -------------------------------------------------------------------------------------------------

    def redis_or_reason(self) -> Any:
        """A redis-py client for ``redis_url`` that answered PING, or why there is none."""
        if self._redis is not None or self._redis_reason is not None:
            return self._redis if self._redis is not None else self._redis_reason
        try:
            import redis
        except ImportError:
            self._redis_reason = "redis-py is not installed (pip install 'cachekit-orm[bench]')"
            return self._redis_reason
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=1, socket_timeout=10)
        try:
            client.ping()
        except redis.RedisError as exc:
            client.close()
            self._redis_reason = f"no redis-server at {self.redis_url} ({exc})"
            return self._redis_reason
        self._redis = client
        return client

    def _cleanup_redis(self) -> None:
        # SCAN + DEL of our own prefix only: the server is shared, so never FLUSHDB/FLUSHALL.
        client = self._redis
        batch: list[bytes] = []
        for key in client.scan_iter(match=self.redis_prefix + "*", count=_SCAN_BATCH):
            batch.append(key)
            if len(batch) >= _SCAN_BATCH:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)

    # -- moto / boto3 ------------------------------------------------------------------------------------------

    def _ensure_moto(self) -> str:
        """Start moto once; return its endpoint URL, or ``""`` with ``_moto_reason`` saying why not."""
        if self._moto_endpoint is not None or self._moto_reason is not None:
            return self._moto_endpoint or ""
        try:
            import boto3  # noqa: F401
            import moto  # noqa: F401
        except ImportError as exc:
            self._moto_reason = f"{exc.name} is not installed (pip install 'cachekit-orm[bench]')"
            return ""
        port = _free_port()
        endpoint = f"http://{LOOPBACK}:{port}"
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        self._moto = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        deadline = time.monotonic() + _MOTO_START_SECONDS
        while time.monotonic() < deadline:
            if self._moto.poll() is not None:
                self._moto_reason = f"moto server exited with status {self._moto.returncode}"
                return ""
            with contextlib.suppress(OSError):
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=0.5).close()
                self._moto_endpoint = endpoint
                return endpoint
            time.sleep(0.1)
        self._stop_moto()
        self._moto_reason = f"moto server did not answer within {_MOTO_START_SECONDS:.0f} s"
        return ""

    def s3_client(self) -> Any:
        """A new boto3 S3 client for the moto server (closed by :meth:`close`), or the reason as a str."""
        endpoint = self._ensure_moto()
        if not endpoint:
            return self._moto_reason or "moto server unavailable"
        import boto3

        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )
        self._clients.append(client)
        return client

    def _stop_moto(self) -> None:
        process, self._moto = self._moto, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Delete this run's Redis keys, close every client, stop moto (each even when an earlier step fails)."""
        try:
            if self._redis is not None:
                try:
                    self._cleanup_redis()
                finally:
                    self._redis.close()
                    self._redis = None
        finally:
            try:
                for client in self._clients:
                    client.close()
                self._clients.clear()
            finally:
                self._stop_moto()
