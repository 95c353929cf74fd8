"""``cachekit.django.CachekitCache`` beyond Django's own suite: configuration, signed pickles, atomicity,
fail-open, native async, visibility in ``cachekit keys``."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.frameworks.django_judge import configure

configure()

from django.core.cache import caches  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.test import override_settings  # noqa: E402

from cachekit.codecs import Codec  # noqa: E402
from cachekit.django import CachekitCache, _SignedPickle  # noqa: E402
from cachekit.errors import DriverError  # noqa: E402

RAN: list[str] = []


def record(what: str) -> None:
    """Called by unpickling a :class:`Boom` (pickled by reference, so it is this very function)."""
    RAN.append(what)


class Boom:
    """Unpickling it runs code (calls :func:`record`): what a planted blob would do."""

    def __reduce__(self) -> Any:
        return (record, ("code ran",))


@pytest.fixture
def redis_backend(redis_url: str, redis_prefix: str) -> CachekitCache:
    return CachekitCache(redis_url, {"OPTIONS": {"config": {"key_prefix": redis_prefix}}})


@pytest.fixture
def memory_backend(request: pytest.FixtureRequest) -> CachekitCache:
    return CachekitCache(f"test-{request.node.name}", {})


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> CachekitCache:
    backend: CachekitCache = request.getfixturevalue(f"{request.param}_backend")
    return backend


# -- LOCATION and OPTIONS ---------------------------------------------------------------------------------------


def test_location_picks_the_driver(redis_url: str, redis_prefix: str, tmp_path: Path) -> None:
    assert CachekitCache(redis_url, {"OPTIONS": {"config": {"key_prefix": redis_prefix}}}).cache.driver.name == "redis"
    assert CachekitCache(str(tmp_path), {}).cache.driver.name == "filesystem"
    assert CachekitCache("a-name", {}).cache.driver.name == "memory"
    assert CachekitCache("", {}).cache.driver.name == "memory"


def test_memory_caches_with_one_location_share_one_store() -> None:
    first = CachekitCache("shared-store", {"KEY_PREFIX": "one"})
    second = CachekitCache("shared-store", {"KEY_PREFIX": "two"})
    other = CachekitCache("another-store", {})
    assert first.cache.driver is second.cache.driver
    assert other.cache.driver is not first.cache.driver
    first.set("k", 1)
    assert second.get("k") is None  # another KEY_PREFIX, one store
    assert CachekitCache("shared-store", {"KEY_PREFIX": "one"}).get("k") == 1
    first.clear()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"drvier": "redis"}, "unknown key 'drvier'; did you mean 'driver'?"),
        ({"driver": "nosuch"}, "nosuch"),
        ({"config": {"colour": "blue"}}, "colour"),
        ({"config": {"serializer": "json"}}, "may not set ['serializer']"),
        ({"breaker": {"failures": 3, "cooldwn": 1}}, "['breaker']"),
        ({"driver": "memory", "config": {"store": "objects"}}, "store='objects'"),
    ],
)
def test_bad_options_are_improperly_configured_naming_the_setting(options: dict[str, Any], message: str) -> None:
    with override_settings(CACHES={"bad": {"BACKEND": "cachekit.django.CachekitCache", "OPTIONS": options}}):
        with pytest.raises(ImproperlyConfigured) as raised:
            caches.create_connection("bad")
    assert "CACHES['bad']['OPTIONS']" in str(raised.value)
    assert message in str(raised.value)


def test_several_servers_in_location_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="2 servers"):
        CachekitCache(["redis://127.0.0.1:6379/0", "redis://127.0.0.1:6380/0"], {})
    assert CachekitCache(["one-name"], {}).cache.driver.name == "memory"


def test_unreachable_redis_at_start_up_is_one_clear_error() -> None:
    from tests.servers import free_port

    with pytest.raises(ImproperlyConfigured, match="cannot reach Redis"):
        CachekitCache(f"redis://127.0.0.1:{free_port()}/0", {"OPTIONS": {"config": {"connect_timeout": 0.5}}})


def test_no_secret_key_and_no_signing_key_is_refused() -> None:
    with override_settings(SECRET_KEY=""), pytest.raises(ImproperlyConfigured, match="signing_key"):
        CachekitCache("no-secret", {})


def test_timeout_none_is_forever_in_memory_and_capped_on_redis(
    memory_backend: CachekitCache, redis_backend: CachekitCache
) -> None:
    for backend in (memory_backend, redis_backend):
        backend.set("k", "v", None)
    found = memory_backend.cache.driver.get_with_expiry(memory_backend.cache.prefix + memory_backend.make_key("k"))
    assert found[1] is None  # type: ignore[index]
    found = redis_backend.cache.driver.get_with_expiry(redis_backend.cache.prefix + redis_backend.make_key("k"))
    left = found[1] - redis_backend.cache._clock()  # type: ignore[index]
    assert 364 * 86400 < left <= 365 * 86400


# -- stored bytes are untrusted: pickles only inside a signed envelope ------------------------------------------


def _plant(backend: CachekitCache, key: str, blob: bytes) -> None:
    backend.cache.driver.set(backend.cache.prefix + backend.make_key(key), blob, 60)


@pytest.mark.parametrize("planted", ["raw pickle", "unsigned envelope", "envelope signed with another key"])
def test_a_planted_pickle_is_a_miss_and_never_unpickled(backend: CachekitCache, planted: str) -> None:
    payload = Boom()
    blob = {
        "raw pickle": pickle.dumps(payload),
        "unsigned envelope": Codec(_SignedPickle()).encode(payload, 60),
        "envelope signed with another key": Codec(_SignedPickle(), signing_key=b"not-the-key-" * 3).encode(payload, 60),
    }[planted]
    RAN.clear()
    errors = backend.cache.errors
    _plant(backend, "planted", blob)
    assert backend.get("planted", "default") == "default"
    _plant(backend, "planted", blob)
    assert backend.has_key("planted") is False
    _plant(backend, "planted", blob)
    assert backend.get_many(["planted"]) == {}
    _plant(backend, "planted", blob)
    with pytest.raises(ValueError, match="not found"):
        backend.incr("planted")
    _plant(backend, "planted", blob)
    assert backend.touch("planted", 30) is False
    assert RAN == []
    assert backend.cache.errors > errors


def test_the_same_blob_signed_with_the_right_key_is_unpickled(backend: CachekitCache) -> None:
    """The control of the test above: it would see a pickle that ran."""
    RAN.clear()
    _plant(backend, "signed", backend._codec.encode(Boom(), 60, backend._key("signed", None)))
    backend.get("signed")
    assert RAN == ["code ran"]


def test_secret_key_fallbacks_still_read_entries_written_before_a_rotation() -> None:
    with override_settings(SECRET_KEY="old-secret-key-0123456789"):
        before = CachekitCache("rotation", {"OPTIONS": {"namespace": "rotation"}})
        before.set("k", {"a": 1})
    with override_settings(SECRET_KEY="new-secret-key-0123456789", SECRET_KEY_FALLBACKS=["old-secret-key-0123456789"]):
        assert CachekitCache("rotation", {"OPTIONS": {"namespace": "rotation"}}).get("k") == {"a": 1}
    with override_settings(SECRET_KEY="new-secret-key-0123456789"):
        assert CachekitCache("rotation", {"OPTIONS": {"namespace": "rotation"}}).get("k") is None


# -- atomic add and incr ----------------------------------------------------------------------------------------


def test_add_and_incr_are_atomic_across_threads(backend: CachekitCache) -> None:
    winners: list[int] = []
    start = threading.Barrier(6)

    def add(n: int) -> None:
        start.wait()
        if backend.add("once", n):
            winners.append(n)

    def incr() -> None:
        for _ in range(20):
            backend.incr("counter")

    threads = [threading.Thread(target=add, args=(n,)) for n in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(winners) == 1
    assert backend.get("once") == winners[0]
    backend.set("counter", 0)
    threads = [threading.Thread(target=incr) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert backend.get("counter") == 80


# -- a backend that fails at run time fails open ----------------------------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[Any]:
    from tests.servers import RedisServer, unavailable

    try:
        server = RedisServer().start()
    except Exception as exc:
        unavailable(f"cannot start a private redis-server: {exc}")
    try:
        yield server
    finally:
        server.stop()
        server.cleanup()


@pytest.mark.redis
def test_a_dead_redis_fails_open(private_redis: Any) -> None:
    config = {"connect_timeout": 0.5, "command_timeout": 0.5, "retries": 0}
    backend = CachekitCache(private_redis.url, {"OPTIONS": {"namespace": "dead", "config": config}})
    backend.set("k", "v")
    assert backend.get("k") == "v"
    private_redis.stop()
    assert backend.get("k", "default") == "default"
    backend.set("k", "w")
    assert backend.add("new", 1) is False
    assert backend.touch("k") is False
    assert backend.has_key("k") is False
    assert backend.get_many(["k"]) == {}
    assert backend.set_many({"a": 1}) == ["a"]
    backend.clear()
    with pytest.raises(DriverError):
        backend.incr("k")  # must return a number: it raises
    with pytest.raises(DriverError):
        backend.delete("k")  # a delete that silently failed would leave stale data
    assert asyncio.run(backend.aget("k", "default")) == "default"
    assert backend.cache.errors > 0


# -- native async ---------------------------------------------------------------------------------------------------


def test_async_methods_on_redis_and_memory_never_use_a_thread(
    monkeypatch: pytest.MonkeyPatch, memory_backend: CachekitCache, redis_backend: CachekitCache, tmp_path: Path,
    redis_url: str, redis_prefix: str,
) -> None:
    import cachekit.drivers.base

    threaded: list[str] = []
    real = cachekit.drivers.base.run_blocking

    def spy(driver: Any, method: Any, *args: Any) -> Any:
        if driver.blocking:  # run inline otherwise: no thread
            threaded.append(f"{driver.name}.{method.__name__}")
        return real(driver, method, *args)

    monkeypatch.setattr(cachekit.drivers.base, "run_blocking", spy)

    async def every_method(backend: CachekitCache) -> None:
        await backend.aset("k", {"n": 1})
        assert await backend.aget("k") == {"n": 1}
        assert await backend.aadd("k", 2) is False
        assert await backend.aadd("counter", 1) is True
        assert await backend.aincr("counter", 2) == 3
        assert await backend.adecr("counter") == 2
        assert await backend.atouch("k", 60) is True
        assert await backend.aset_many({"a": 1, "b": 2}) == []
        assert await backend.aget_many(["a", "b", "c"]) == {"a": 1, "b": 2}
        assert await backend.ahas_key("a") is True
        await backend.adelete_many(["a", "b"])
        assert await backend.adelete("k") is True
        assert await backend.aget_or_set("g", 5) == 5
        await backend.aclear()
        await backend.aclose()

    for backend in (memory_backend, redis_backend):
        asyncio.run(every_method(backend))
    assert threaded == []
    tiers = [{"driver": "memory", "ttl": 30}, {"driver": "redis", "config": {"key_prefix": redis_prefix}}]
    tiered = CachekitCache(redis_url, {"OPTIONS": {"namespace": "tiered-async", "tiers": tiers}})
    tiered.set("hot", {"n": 1})
    assert asyncio.run(tiered.aget("hot")) == {"n": 1}
    assert threaded == []  # a memory-tier hit is answered inline
    asyncio.run(every_method(CachekitCache(str(tmp_path), {})))  # the filesystem runs on the executor: the spy sees it
    assert threaded


# -- a cachekit namespace ---------------------------------------------------------------------------------------


def test_entries_show_in_cachekit_keys_and_stats(redis_url: str, redis_prefix: str) -> None:
    from cachekit._tools.cli import main

    backend = CachekitCache(redis_url, {"OPTIONS": {"namespace": "site", "config": {"key_prefix": redis_prefix}}})
    backend.set("home", "<html>")
    backend.get("home")
    out = io.StringIO()
    config = json.dumps({"url": redis_url, "key_prefix": redis_prefix})
    with contextlib.redirect_stdout(out):
        assert main(["keys", "--driver", "redis", "--config", config, "--namespace", "site"]) == 0
    assert out.getvalue().split() == ["site/:1:home"]
    assert backend.cache.stats().hits >= 1


# -- the bench section ------------------------------------------------------------------------------------------


@pytest.mark.redis
def test_bench_django_section_reports_every_row(redis_url: str) -> None:
    """Shape only (speed lives in ``cachekit bench``): every row measured, ratios against Django's RedisCache."""
    from cachekit._tools.bench import run

    report = run(["django"], quick=True, redis_url=redis_url, instructions=False)
    rows = {row["id"]: row for row in report["sections"]["django"]["rows"]}
    assert {"django_django_builtin", "django_django_redis", "django_cachekit", "django_cachekit_tiered",
            "django_aget_builtin", "django_aget_cachekit"} <= set(rows)
    assert rows["django_cachekit"]["target"]["max_ratio"] == 1.1
    assert rows["django_cachekit_tiered"]["target"]["max_ratio"] == 0.1
    assert rows["django_cachekit"]["ratio"] > 0
    assert rows["django_aget_cachekit"]["reference"] == "django_aget_builtin"


def test_import_cachekit_does_not_import_django() -> None:
    import subprocess
    import sys

    code = "import sys, cachekit; cachekit.Cache(driver='memory').set('k', 1); print('django' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "False"
