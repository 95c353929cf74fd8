"""Single-flight across processes: ``Cache(distributed_lock=True)`` on a real Redis."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from cachekit import Cache, cached
from cachekit.drivers.redis import RedisDriver
from cachekit.errors import ConfigurationError
from tests.servers import free_port


def _cache(redis_url: str, prefix: str, **options: Any) -> Cache:
    return Cache(driver="redis", namespace="lock", config={"url": redis_url, "key_prefix": prefix}, **options)


def _storm(caches: list[Cache], threads_per_cache: int = 6, load_seconds: float = 0.2) -> int:
    """Many threads over several caches (as several processes) miss one key at once; return the source's calls."""
    calls: list[int] = []
    lock = threading.Lock()

    def source(id: str) -> dict[str, str]:
        with lock:
            calls.append(1)
        time.sleep(load_seconds)
        return {"id": id}

    readers: list[Callable[[str], Any]] = [
        cached(action="get", namespace=cache, resource="users")(source) for cache in caches
    ]
    barrier = threading.Barrier(len(readers) * threads_per_cache)
    results: list[Any] = []

    def worker(read: Callable[[str], Any]) -> None:
        barrier.wait()
        results.append(read("u1"))

    workers = [threading.Thread(target=worker, args=(r,)) for r in readers for _ in range(threads_per_cache)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    assert results == [{"id": "u1"}] * len(workers)
    return len(calls)


def test_processes_missing_one_key_load_it_once(redis_url: str, redis_prefix: str) -> None:
    caches = [_cache(redis_url, redis_prefix, distributed_lock=True) for _ in range(3)]
    assert _storm(caches) == 1


def test_without_the_lock_each_process_loads(redis_url: str, redis_prefix: str) -> None:
    # The control: in-process single-flight alone lets every process call the source once.
    caches = [_cache(redis_url, redis_prefix) for _ in range(3)]
    assert _storm(caches) == 3


def test_real_processes_share_the_lock(redis_url: str, redis_prefix: str) -> None:
    counter = f"{redis_prefix}loads"
    start_at = time.time() + 1.5  # both processes import and connect first, then miss together
    script = textwrap.dedent(
        f"""
        import time, redis
        from cachekit import Cache, cached
        client = redis.Redis.from_url({redis_url!r})
        cache = Cache(driver="redis", namespace="lockproc",
                      config={{"url": {redis_url!r}, "key_prefix": {redis_prefix!r}}}, distributed_lock=True)
        @cached(action="get", namespace=cache, resource="users")
        def get(id):
            client.incr({counter!r})
            time.sleep(0.3)
            return {{"id": id}}
        time.sleep(max(0.0, {start_at} - time.time()))
        assert get("u1") == {{"id": "u1"}}
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert [p.wait(timeout=30) for p in procs] == [0, 0]
    client = redis.Redis.from_url(redis_url)
    try:
        assert int(client.get(counter) or 0) == 1
    finally:
        client.close()


def test_a_holder_that_died_does_not_block_for_long(redis_url: str, redis_prefix: str) -> None:
    cache = _cache(redis_url, redis_prefix, distributed_lock=True, lock_timeout=5)
    calls: list[str] = []

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> str:
        calls.append(id)
        return id

    key = get.cache_key("u1")
    assert cache.driver.acquire_lock(key, 0.3) is not None  # a process took the lock, then crashed
    started = time.monotonic()
    assert get("u1") == "u1"
    waited = time.monotonic() - started
    assert calls == ["u1"]
    assert 0.2 <= waited < 3, waited  # waited for the lock to expire, not for lock_timeout


def test_a_holder_that_stored_nothing_lets_the_others_load_at_once(redis_url: str, redis_prefix: str) -> None:
    # min_hits_before_store=2: the first load is not stored, so waiters must not sit out lock_timeout.
    options = {"distributed_lock": True, "lock_timeout": 10, "method_policies": {"get": {"min_hits_before_store": 2}}}
    caches = [_cache(redis_url, redis_prefix, **options) for _ in range(2)]
    started = time.monotonic()
    calls = _storm(caches, threads_per_cache=2, load_seconds=0.1)
    assert calls == 2
    assert time.monotonic() - started < 5


def test_lock_entries_are_not_listed(redis_url: str, redis_prefix: str) -> None:
    driver = RedisDriver(url=redis_url, key_prefix=redis_prefix)
    try:
        driver.set("k", b"v")
        token = driver.acquire_lock("k", 5)
        assert token is not None
        assert driver.acquire_lock("k", 5) is None
        assert driver.keys() == ["k"]
        assert driver.size() == 1
        driver.release_lock("k", "not-the-token")
        assert driver.acquire_lock("k", 5) is None, "a wrong token must not release the lock"
        driver.release_lock("k", token)
        assert driver.acquire_lock("k", 5) is not None
    finally:
        driver.close()


def test_a_failing_lock_fails_open() -> None:
    cache = Cache(
        driver="redis",
        namespace="lock",
        config={"url": f"redis://127.0.0.1:{free_port()}/0", "connect_timeout": 0.2, "command_timeout": 0.2},
        distributed_lock=True,
    )

    @cached(action="get", namespace=cache, resource="users")
    def get(id: str) -> str:
        return id.upper()

    assert get("u1") == "U1"
    assert cache.stats().errors >= 1
    cache.close()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"driver": "memory", "distributed_lock": True}, "cross-process locks"),
        ({"driver": "memory", "distributed_lock": "yes"}, "True or False"),
    ],
)
def test_bad_lock_options(options: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        Cache(**options)


def test_lock_timeout_must_be_positive(redis_url: str, redis_prefix: str) -> None:
    with pytest.raises(ConfigurationError, match="lock_timeout"):
        _cache(redis_url, redis_prefix, distributed_lock=True, lock_timeout=0)
