"""The judge of ``cachekit.flask.CachekitCache``: Flask-Caching's own test suite, on four configurations.

From the sdist of the installed Flask-Caching (:mod:`tests.frameworks.flask_caching_suite`):

- ``GenericCacheTests``, subclassed here as Flask-Caching does for its Redis and filesystem backends, with a
  ``make_cache`` that builds ``CachekitCache(...)`` directly with keywords;
- every app test (``@cache.cached``, ``@cache.memoize``, views, templates, signals, serializers ...), run against
  an app whose ``CACHE_TYPE`` is ours, configured through Flask-Caching's own settings (``CACHE_DIR``,
  ``CACHE_REDIS_URL``, ``CACHE_OPTIONS``, ``SECRET_KEY``).

Configurations: ``memory``, ``filesystem`` (diskcache in a temporary directory), ``redis`` (the machine's Redis,
a key prefix of the test's own) and ``memory+redis`` (tiers). Time is the shared fake ``clock``: the backend takes
it as its clock, so Flask-Caching's ``clock.advance`` / fast ``sleep`` expire entries on every driver (on Redis the
envelope's deadline decides; the native ``PX`` expiry is checked in ``test_flask_backend.py``). The tests skipped,
and why, are :data:`~tests.frameworks.flask_caching_suite.SKIPPED`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask
import flask_caching
import pytest

from cachekit.flask import CachekitCache
from tests.conftest import FakeClock
from tests.frameworks.flask_caching_suite import export_app_tests, generic_tests, suite_dir
from tests.servers import servers_required

try:
    GenericCacheTests = generic_tests()  # fetches Flask-Caching's sdist on first use (pip download)
except RuntimeError as exc:
    if servers_required():
        raise
    pytest.skip(f"Flask-Caching's test suite is not available: {exc}", allow_module_level=True)

CONFIGURATIONS = ("memory", "filesystem", "redis", "memory+redis")
SECRET_KEY = "flask-caching-suite-secret-key"
DRIVER_OF = {"memory": "memory", "filesystem": "filesystem", "redis": "redis", "memory+redis": "tiered"}


def direct_options(configuration: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """``CachekitCache(...)`` keywords of one configuration (what a user passes building it directly)."""
    if configuration == "memory":
        return {"driver": "memory"}
    key = b"flask-caching-suite-signing-key!"
    if configuration == "filesystem":
        config = {"directory": str(tmp_path), "key_prefix": f"{uuid.uuid4().hex}/"}
        return {"driver": "filesystem", "config": config, "signing_key": key}
    redis = {"url": request.getfixturevalue("redis_url"), "key_prefix": request.getfixturevalue("redis_prefix")}
    if configuration == "redis":
        return {"driver": "redis", "config": redis, "signing_key": key}
    return {"drivers": [{"driver": "memory", "ttl": 60}, {"driver": "redis", "config": redis}], "signing_key": key}


def flask_settings(configuration: str, request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> dict[
    str, Any
]:
    """The app settings of one configuration, in Flask-Caching's own terms where it has them."""
    options: dict[str, Any] = {"clock": clock}
    settings: dict[str, Any] = {"CACHE_TYPE": "cachekit.flask.CachekitCache", "SECRET_KEY": SECRET_KEY}
    if configuration == "filesystem":
        settings["CACHE_DIR"] = str(tmp_path)
        options["config"] = {"key_prefix": f"{uuid.uuid4().hex}/"}
    elif configuration == "redis":
        settings["CACHE_REDIS_URL"] = request.getfixturevalue("redis_url")
        options["config"] = {"key_prefix": request.getfixturevalue("redis_prefix")}
    elif configuration == "memory+redis":  # the Redis tier takes CACHE_REDIS_URL
        settings["CACHE_REDIS_URL"] = request.getfixturevalue("redis_url")
        redis = {"key_prefix": request.getfixturevalue("redis_prefix")}
        options["drivers"] = [{"driver": "memory", "ttl": 60}, {"driver": "redis", "config": redis}]
    settings["CACHE_OPTIONS"] = options
    return settings


@pytest.fixture(scope="module")
def cache_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One diskcache directory for the module: each test writes under a driver key_prefix of its own (creating a
    diskcache per test cost more than the test)."""
    return tmp_path_factory.mktemp("flask-caching-suite")


@pytest.fixture(params=CONFIGURATIONS)
def configuration(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def app(
    request: pytest.FixtureRequest, configuration: str, cache_directory: Path, clock: FakeClock
) -> Iterator[flask.Flask]:
    """Flask-Caching's ``app`` fixture (its conftest), with our backend as ``CACHE_TYPE``."""
    app = flask.Flask(request.module.__name__, template_folder=str(suite_dir()))
    app.testing = True
    app.config.update(flask_settings(configuration, request, cache_directory, clock))
    yield app
    backends = list(app.extensions.get("cache", {}).values())
    for backend in backends:
        if isinstance(backend, CachekitCache):
            backend.close()
    # the judge judges our backend, on the configuration named: every cache the test built on this app is ours
    assert all(isinstance(backend, CachekitCache) for backend in backends), backends
    kinds = {backend.cachekit.driver.name for backend in backends}
    assert kinds <= {DRIVER_OF[configuration]}, (configuration, kinds)


@pytest.fixture
def cache(app: flask.Flask) -> flask_caching.Cache:
    return flask_caching.Cache(app)


@pytest.fixture(
    params=list(flask_caching.SUPPORTED_HASH_FUNCTIONS),
    ids=[method.__name__ for method in flask_caching.SUPPORTED_HASH_FUNCTIONS],
)
def hash_method(request: pytest.FixtureRequest) -> Any:
    return request.param


class TestCachekitCache(GenericCacheTests):  # type: ignore[misc]
    """Flask-Caching's ``GenericCacheTests`` on ``CachekitCache(...)`` built with keywords."""

    # Every driver expires by the backend's clock (the envelope's deadline), so the fake clock is enough.
    _can_use_fast_sleep = True

    @pytest.fixture
    def make_cache(
        self, request: pytest.FixtureRequest, configuration: str, cache_directory: Path, clock: FakeClock
    ) -> Iterator[Callable[..., CachekitCache]]:
        built: list[CachekitCache] = []

        def make(**kwargs: Any) -> CachekitCache:
            backend = CachekitCache(**direct_options(configuration, request, cache_directory), clock=clock, **kwargs)
            built.append(backend)
            return backend

        yield make
        for backend in built:
            backend.clear()
            backend.close()


APP_TESTS = export_app_tests(globals())


@pytest.fixture(scope="module")
def s3_flask(moto_server: Any) -> Iterator[tuple[Any, str]]:
    """A boto3 client and one bucket for the S3 class (each test writes under a key prefix of its own): a client
    and a bucket per test cost more than the test."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server.endpoint_url, region_name="us-east-1")
    name = f"cachekit-flask-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield client, name
    client.close()


@pytest.mark.s3
class TestCachekitCacheOnS3(GenericCacheTests):  # type: ignore[misc]
    """The same generic tests on the S3 driver (moto's server): not one of the four judged configurations, the
    check that any cachekit driver serves; the app tests are left to the four (S3 round trips are slow)."""

    _can_use_fast_sleep = True

    @pytest.fixture
    def make_cache(
        self, s3_flask: tuple[Any, str], clock: FakeClock
    ) -> Iterator[Callable[..., CachekitCache]]:
        built: list[CachekitCache] = []
        client, bucket = s3_flask
        config = {"bucket": bucket, "client": client, "key_prefix": f"t-{uuid.uuid4().hex[:12]}/"}

        def make(**kwargs: Any) -> CachekitCache:
            backend = CachekitCache(driver="s3", config=config, signing_key=b"flask-caching-suite-s3-key", clock=clock,
                                    **kwargs)
            built.append(backend)
            return backend

        yield make
        for backend in built:
            backend.close()
