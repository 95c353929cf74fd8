"""cachekit's bounded executor: sized by option or environment, bounded, context-preserving, fork-safe."""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
import time
import warnings

import pytest

from cachekit._executor import ENV_WORKERS, BoundedExecutor, default_workers, run_blocking, shared_executor
from cachekit.drivers.memory import MemoryDriver
from cachekit.errors import ConfigurationError

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def test_default_size_is_the_stdlib_io_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_WORKERS, raising=False)
    assert default_workers() == min(32, (os.cpu_count() or 1) + 4)


def test_environment_sizes_the_default_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_WORKERS, "3")
    assert default_workers() == 3
    assert shared_executor().workers == 3
    assert shared_executor() is shared_executor(3)


@pytest.mark.parametrize("bad", ["many", "0", "-2", "5000"])
def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(ENV_WORKERS, bad)
    with pytest.raises(ConfigurationError, match=ENV_WORKERS):
        default_workers()


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4", 2000])
def test_bad_sizes_are_rejected(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="async_workers"):
        BoundedExecutor(bad)  # type: ignore[arg-type]


def test_at_most_workers_calls_run_at_once() -> None:
    executor = BoundedExecutor(2)
    lock = threading.Lock()
    running = peak = 0

    def blocking_call() -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return threading.current_thread().name

    async def main() -> list[str]:
        return await asyncio.gather(*(executor.run(blocking_call) for _ in range(8)))

    try:
        names = asyncio.run(main())
    finally:
        executor.shutdown()
    assert peak == 2
    assert len(set(names)) == 2
    assert all(name.startswith("cachekit-async") for name in names)


def test_context_variables_go_with_the_call() -> None:
    executor = BoundedExecutor(1)

    async def main() -> str:
        REQUEST_ID.set("req-42")
        return await executor.run(REQUEST_ID.get)

    try:
        assert asyncio.run(main()) == "req-42"
    finally:
        executor.shutdown()


def test_non_blocking_drivers_run_inline() -> None:
    driver = MemoryDriver()
    driver.set("k", b"v")

    async def main() -> tuple[bytes, str]:
        return await run_blocking(driver, driver.get, "k"), await run_blocking(
            driver, lambda: threading.current_thread().name
        )

    blob, thread = asyncio.run(main())
    assert blob == b"v"
    assert thread == threading.current_thread().name


def test_a_shut_down_executor_starts_again_on_next_use() -> None:
    executor = BoundedExecutor(1)
    assert asyncio.run(executor.run(lambda: 1)) == 1
    executor.shutdown()
    assert asyncio.run(executor.run(lambda: 2)) == 2
    executor.shutdown()
    assert "idle" in repr(executor)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_working_threads() -> None:
    executor = BoundedExecutor(1)
    assert asyncio.run(executor.run(lambda: "parent")) == "parent"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+ warns about forking with threads
        pid = os.fork()
    if pid == 0:  # the child: the parent's pool threads do not exist here
        try:
            ok = asyncio.run(asyncio.wait_for(executor.run(lambda: "child"), 5)) == "child"
        except BaseException:
            ok = False
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on the executor")
    executor.shutdown()
    assert os.waitstatus_to_exitcode(status) == 0
