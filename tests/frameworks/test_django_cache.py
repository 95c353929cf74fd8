"""``cachekit.django.CachekitCache`` judged by Django's own tests (issue 16).

Django's sdist (``tests/frameworks/sdist.py``, the installed version) ships ``tests/cache/tests.py``. As Django
does for ``RedisCacheTests`` and ``FileBasedCacheTests``, this module subclasses its ``BaseCacheTests`` for each
configuration of our backend: memory, filesystem, Redis, and a memory tier in front of Redis. The same suite
judges the ``a*`` methods (``AsyncDriven``: every ``cache.x(...)`` of the tests runs ``await cache.ax(...)``) on
memory, Redis and tiers. Django's cache middleware / ``cache_page`` tests and the cache-backed session tests
(``django.contrib.sessions``' ``cache`` and ``cached_db`` backends) run against our backend too.

Skipped tests (:data:`SKIPPED`) and tests run in an adapted form (:data:`ADAPTED`), with why; everything else
Django's suite has for these classes runs as Django wrote it.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any, ClassVar
from unittest import mock

import pytest

from tests.frameworks.django_judge import (
    BACKEND,
    REDIS_KEY_PREFIX,
    AsyncDriven,
    base_caches,
    configure,
    django_databases,
    our_caches,
)

configure()

from cache import tests as django_cache_tests  # noqa: E402 - importable once configure() ran
from django.core.cache import caches  # noqa: E402
from django.test import SimpleTestCase, TestCase, override_settings  # noqa: E402
from sessions_tests import tests as django_session_tests  # noqa: E402

BaseCacheTests = django_cache_tests.BaseCacheTests
_DIRECTORY = tempfile.mkdtemp(prefix="cachekit-django-judge-")
#: Django's own test config leaves culling out for Redis (``redis_excluded_caches``): it has no entry count.
_NO_CULL = frozenset({"cull", "zero_cull"})

#: Every test of Django's suite that does not run here, and why.
SKIPPED: dict[str, str] = {
    "test_cache_read_for_model_instance_with_deferred (async)": (
        "pickling an unevaluated QuerySet runs its query, which Django forbids in an async context "
        "(SynchronousOnlyOperation, before the backend is reached); the sync runs pass"
    ),
    "test_cache_write_for_model_instance_with_deferred (async)": (
        "as test_cache_read_for_model_instance_with_deferred (async)"
    ),
    "test_cull (Redis, tiers; sync and async)": (
        "skips itself ('Culling isn't implemented'): as Django does for RedisCache (redis_excluded_caches), the "
        "culling caches are left out where the store has no cheap entry count; memory and filesystem cull"
    ),
    "test_zero_cull (Redis, tiers; sync and async)": "as test_cull",
    "test_cull_delete_when_store_empty (Redis, tiers; sync and async)": "as test_cull",
}
#: Tests that run in an adapted form, and how.
ADAPTED: dict[str, str] = {
    "test_get_or_set_racing (async)": (
        "Django's patches the sync add() to lose the race, but aget_or_set() calls aadd(): the async run patches "
        "aadd() instead, with the same assertion"
    ),
    "CacheSessionTests.test_non_default_cache": (
        "its method-level CACHES has a LocMemCache 'sessions' cache: ours takes its place, same assertions"
    ),
}


def _skip(reason: str) -> Any:
    def skipped(self: Any) -> None:
        self.skipTest(reason)

    return skipped


@pytest.fixture(scope="module", autouse=True)
def _django_test_database() -> Iterator[None]:
    with django_databases():
        yield
    caches.close_all()
    shutil.rmtree(_DIRECTORY, ignore_errors=True)


@pytest.fixture(scope="module")
def _redis_keys(redis_url: str) -> Iterator[None]:
    """Remove this module's Redis keys afterwards (its own prefix; never FLUSHALL)."""
    import redis

    yield
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=REDIS_KEY_PREFIX + "*", count=1000))
        if keys:
            client.unlink(*keys)
    finally:
        client.close()


# -- BaseCacheTests on each configuration -------------------------------------------------------------------------


class _Ours:
    """Each judged class also checks that what it judges is our backend, on the driver it names."""

    driver: ClassVar[str]

    def test_backend_is_cachekit(self) -> None:
        from cachekit.django import CachekitCache

        backend = caches["default"]
        assert isinstance(backend, CachekitCache)
        assert backend.cache.driver.name == self.driver


@override_settings(CACHES=base_caches("memory"))
class MemoryCachekitTests(_Ours, BaseCacheTests, TestCase):
    """Django's backend tests on the memory driver (LOCATION by name, shared by caches with the same name)."""

    driver = "memory"


@pytest.mark.slow
@override_settings(CACHES=base_caches("filesystem", _DIRECTORY))
class FilesystemCachekitTests(_Ours, BaseCacheTests, TestCase):
    """Django's backend tests on the filesystem driver (LOCATION is an absolute directory)."""

    driver = "filesystem"


@pytest.mark.redis
@pytest.mark.usefixtures("_redis_keys")
@override_settings(CACHES=base_caches("redis", exclude=_NO_CULL))
class RedisCachekitTests(_Ours, BaseCacheTests, TestCase):
    """Django's backend tests on Redis (LOCATION is a redis:// URL; keys under this run's own prefix)."""

    driver = "redis"


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.usefixtures("_redis_keys")
@override_settings(CACHES=base_caches("tiered", exclude=_NO_CULL))
class TieredCachekitTests(_Ours, BaseCacheTests, TestCase):
    """Django's backend tests on a memory tier in front of Redis."""

    driver = "tiered"


# -- the same tests through the async methods ----------------------------------------------------------------


class _Async:
    """Runs the inherited tests with ``cache`` in Django's test module replaced by :class:`AsyncDriven`."""

    runner: asyncio.Runner

    def setUp(self) -> None:
        self.runner = asyncio.Runner()
        patcher = mock.patch.object(django_cache_tests, "cache", AsyncDriven(lambda: caches["default"], self.runner))
        patcher.start()
        self.addCleanup(self.runner.close)  # cleanups run after tearDown (whose clear() needs the loop)
        self.addCleanup(patcher.stop)
        super().setUp()  # type: ignore[misc]

    def test_get_or_set_racing(self) -> None:
        """Django's test patches the sync ``add`` to lose the race; ``aget_or_set`` calls ``aadd``: patch that."""
        with mock.patch(f"{BACKEND}.aadd", new=mock.AsyncMock(return_value=False)) as aadd:
            assert django_cache_tests.cache.get_or_set("key", "default") == "default"
        aadd.assert_awaited_once()

    test_cache_read_for_model_instance_with_deferred = _skip(
        SKIPPED["test_cache_read_for_model_instance_with_deferred (async)"]
    )
    test_cache_write_for_model_instance_with_deferred = _skip(
        SKIPPED["test_cache_write_for_model_instance_with_deferred (async)"]
    )


# No async class on memory alone: its async methods answer inline through the same bodies as the sync ones,
# which MemoryCachekitTests judges; the async classes judge the paths that differ (redis.asyncio, tiers).


@pytest.mark.redis
@pytest.mark.usefixtures("_redis_keys")
@override_settings(CACHES=base_caches("redis", exclude=_NO_CULL))
class AsyncRedisCachekitTests(_Ours, _Async, BaseCacheTests, TestCase):
    """Django's backend tests through ``aget``/``aset``/... on Redis (``redis.asyncio``)."""

    driver = "redis"


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.usefixtures("_redis_keys")
@override_settings(CACHES=base_caches("tiered", exclude=_NO_CULL))
class AsyncTieredCachekitTests(_Ours, _Async, BaseCacheTests, TestCase):
    """Django's backend tests through the async methods on a memory tier in front of Redis."""

    driver = "tiered"


# -- cache middleware, cache_page, template responses -------------------------------------------------------------


def _ours(test_class: type, config: str) -> Any:
    """``test_class``'s own ``CACHES`` (its class-level ``override_settings``) with our backend in ``config``.

    ``USE_TZ=False`` and ``LANGUAGE_CODE="en"`` as in Django's test settings, which the expected keys assume.
    """
    overridden: dict[str, Any] = getattr(test_class, "_overridden_settings", {})
    return override_settings(CACHES=our_caches(overridden["CACHES"], config), USE_TZ=False, LANGUAGE_CODE="en")


_MIDDLEWARE = ("CacheUtils", "PrefixedCacheUtils", "CacheHEADTest", "CacheI18nTest", "PrefixedCacheI18nTest",
               "CacheMiddlewareTest", "TestWithTemplateResponse")

for _config in ("memory", "redis"):
    for _name in _MIDDLEWARE:
        _base = getattr(django_cache_tests, _name)
        _marks = [pytest.mark.redis, pytest.mark.usefixtures("_redis_keys")] if _config == "redis" else []
        _judged: Any = _ours(_base, _config)(type(f"{_name}_{_config}", (_base,), {"__module__": __name__}))
        for _mark in _marks:
            _judged = _mark(_judged)
        globals()[f"{_name}_{_config.capitalize()}Cachekit"] = _judged
del _config, _name, _base, _marks, _judged


# -- sessions on the cache ----------------------------------------------------------------------------------------


def _non_default_cache(config: str) -> Any:
    """Django's ``test_non_default_cache`` with its ``sessions`` cache (LocMem there) ours in ``config``."""
    caches_setting = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
                      **our_caches({"sessions": {"LOCATION": "session"}}, config)}
    test = django_session_tests.CacheSessionTests.test_non_default_cache.__wrapped__
    return override_settings(CACHES=caches_setting, SESSION_CACHE_ALIAS="sessions")(test)


@override_settings(CACHES=our_caches({"default": {}}, "memory"), SESSION_CACHE_ALIAS="default")
class CacheSessionCachekitTests(django_session_tests.CacheSessionTests):
    """``django.contrib.sessions.backends.cache`` on our backend."""

    test_non_default_cache = _non_default_cache("memory")


@pytest.mark.redis
@pytest.mark.usefixtures("_redis_keys")
@override_settings(CACHES=our_caches({"default": {}}, "redis"), SESSION_CACHE_ALIAS="default")
class CacheSessionRedisCachekitTests(django_session_tests.CacheSessionTests):
    """``django.contrib.sessions.backends.cache`` on our backend over Redis."""

    test_non_default_cache = _non_default_cache("redis")


@override_settings(CACHES=our_caches({"default": {}}, "memory"))
class CacheDBSessionCachekitTests(django_session_tests.CacheDBSessionTests):
    """``django.contrib.sessions.backends.cached_db`` with our backend as its cache."""


class TestSkipList:
    """The skip list stays honest: every entry names a test that exists in Django's suite."""

    names: ClassVar[dict[str, type]] = {
        "test_cull": BaseCacheTests,
        "test_zero_cull": BaseCacheTests,
        "test_cull_delete_when_store_empty": BaseCacheTests,
        "test_get_or_set_racing": BaseCacheTests,
        "test_non_default_cache": django_session_tests.CacheSessionTests,
        "test_cache_read_for_model_instance_with_deferred": BaseCacheTests,
        "test_cache_write_for_model_instance_with_deferred": BaseCacheTests,
    }

    def test_every_skipped_test_exists(self) -> None:
        for entry in [*SKIPPED, *ADAPTED]:
            name = entry.split(" ")[0].rpartition(".")[2]
            assert hasattr(self.names[name], name), entry


# Keep the imported test base classes from being collected here a second time.
del SimpleTestCase, TestCase
