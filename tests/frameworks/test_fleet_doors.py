"""The framework doors take ``publish_stats`` (issue 20): a Django ``OPTIONS`` entry, a Flask-Caching
``CACHE_OPTIONS`` entry; their processes then show in ``cachekit stats --fleet``."""

from __future__ import annotations

import pytest

from cachekit.fleet import read_fleet
from tests.frameworks.django_judge import configure

configure()

from cachekit.django import CachekitCache as DjangoCache  # noqa: E402
from cachekit.flask import CachekitCache as FlaskCache  # noqa: E402


def test_django_options_publish_stats(redis_url: str, redis_prefix: str) -> None:
    backend = DjangoCache(redis_url, {"OPTIONS": {"config": {"key_prefix": redis_prefix}, "publish_stats": 3600,
                                                  "namespace": "django-fleet"}})
    backend.set("k", 1)
    for _ in range(3):
        assert backend.get("k") == 1
    publisher = backend.cache.stats_publisher
    assert publisher is not None
    assert publisher.flush()
    (total,) = read_fleet(backend.cache.driver, "django-fleet").namespaces()
    assert (total["hits"], total["sets"]) == (3, 1)
    backend.cache.close()


def test_flask_options_publish_stats(redis_url: str, redis_prefix: str) -> None:
    backend = FlaskCache(driver="redis", config={"url": redis_url, "key_prefix": redis_prefix}, serializer="msgpack",
                         namespace="flask-fleet", publish_stats=3600)
    backend.set("k", 1)
    assert backend.get("k") == 1
    assert backend.get("missing") is None
    publisher = backend.cachekit.stats_publisher
    assert publisher is not None
    assert publisher.flush()
    (total,) = read_fleet(backend.cachekit.driver, "flask-fleet").namespaces()
    assert (total["hits"], total["misses"]) == (1, 1)
    backend.cachekit.close()


def test_a_bad_value_is_a_configuration_error() -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="publish_stats must be"):
        DjangoCache("fleet-bad", {"OPTIONS": {"publish_stats": "often"}})
