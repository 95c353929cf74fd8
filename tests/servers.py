"""Real servers for the test suite: moto's S3 HTTP server and redis-server processes, on loopback only.

Locally a missing server skips the tests that need it; with ``CI=true`` or ``CACHEKIT_REQUIRE_SERVERS=1`` it
fails them, so CI never passes by skipping.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

LOOPBACK = "127.0.0.1"


def servers_required() -> bool:
    """True when a missing server must fail the run instead of skipping (CI)."""
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("CACHEKIT_REQUIRE_SERVERS") == "1"


def unavailable(reason: str) -> None:
    """Skip locally, fail in CI."""
    if servers_required():
        pytest.fail(f"{reason} (servers are required because CI=true or CACHEKIT_REQUIRE_SERVERS=1)")
    pytest.skip(reason)


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
        time.sleep(0.05)
    return False


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` every 10 ms for up to ``timeout`` seconds (what another client or process did to reach a
    server, e.g. a pub/sub delivery); its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@dataclass
class MotoServer:
    """moto's S3 server in a subprocess; boto3 reaches it over a real socket."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> MotoServer:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.endpoint_url + "/moto-api/", timeout=0.5).close()
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not start within 30 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class RedisServer:
    """A private redis-server process on a free loopback port (no persistence), for tests that stop it."""

    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    directory: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="cachekit-redis-"))

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not on PATH")
        self.process = subprocess.Popen(
            [
                binary, "--bind", LOOPBACK, "--port", str(self.port), "--save", "", "--appendonly", "no",
                "--dir", self.directory, *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_for_port(self.port):
            self.stop()
            raise RuntimeError(f"redis-server did not start on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open and nothing answers (a hung server)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the server (a crash: no clean shutdown) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()  # a paused server cannot handle SIGTERM
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def running_moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


def _redis_cli(port: int, *args: str, timeout: float = 10.0) -> str:
    """Run ``redis-cli -p PORT ARGS...`` against a loopback node; return its stdout."""
    binary = shutil.which("redis-cli")
    if binary is None:
        raise FileNotFoundError("redis-cli is not on PATH")
    result = subprocess.run(
        [binary, "-h", LOOPBACK, "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"redis-cli {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout


@dataclass
class RedisCluster:
    """A Redis Cluster of ``masters`` primaries (no replicas) built from redis-server binaries on loopback.

    Each node gets a free client port and an explicit free cluster-bus port (``--cluster-port``), so no node
    depends on ``port + 10000`` being free. E.g.::

        cluster = RedisCluster().start()
        RedisDriver(url=cluster.url)        # redis+cluster://127.0.0.1:PORT
        cluster.cleanup()
    """

    masters: int = 3
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """A cachekit cluster URL naming the first node; the client discovers the others."""
        return f"redis+cluster://{LOOPBACK}:{self.ports[0]}"

    def start(self, timeout: float = 30.0) -> RedisCluster:
        try:
            for _ in range(self.masters):
                node = RedisServer(extra_args=(
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-port", str(free_port()), "--cluster-node-timeout", "2000",
                ))
                self.nodes.append(node)
                node.start()
            _redis_cli(
                self.ports[0], "--cluster", "create", *(f"{LOOPBACK}:{port}" for port in self.ports),
                "--cluster-replicas", "0", "--cluster-yes", timeout=timeout,
            )
            self._wait_until_ok(timeout)
        except BaseException:
            self.cleanup()
            raise
        return self

    def _wait_until_ok(self, timeout: float) -> None:
        # `--cluster create` returns once the nodes agree on the slots; every node must also report
        # cluster_state:ok and know all its peers before a client that starts from any node sees a whole cluster.
        deadline = time.monotonic() + timeout
        wanted = ("cluster_state:ok", f"cluster_known_nodes:{self.masters}")
        while time.monotonic() < deadline:
            infos = [_redis_cli(port, "cluster", "info") for port in self.ports]
            if all(all(line in info for line in wanted) for info in infos):
                return
            time.sleep(0.05)
        raise RuntimeError(f"Redis Cluster on ports {self.ports} did not reach cluster_state:ok in {timeout} s")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()
