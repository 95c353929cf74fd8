"""The Django recipe under Django's own test machinery on SQLite (in memory): ``TestCase``, ``TransactionTestCase``,
the test ``Client``. The same cases run on PostgreSQL in ``test_django_postgres.py``.

Every module imported from ``recipes/django`` here is the file the recipe's README tells users to copy.
"""

from __future__ import annotations

import tests.recipes.django_env  # noqa: F401  (configures Django: it must come before any model import)

# isort: split

from collections.abc import Iterator

import pytest
from django.test import TestCase, TransactionTestCase, override_settings

from recipes.django.demoapp.repositories import articles
from recipes.django.repository import get_cache
from recipes.django.settings_snippet import cachekit_settings
from tests.recipes.django_cases import (
    SPORTS,
    BulkCases,
    ReadCases,
    RecipeCases,
    SignalCases,
    ViewCases,
)
from tests.recipes.django_env import django_module
from tests.recipes.django_transaction_cases import TransactionCases


@pytest.fixture(scope="module", autouse=True)
def _django_test_database() -> Iterator[None]:
    with django_module("default"):
        yield


class TestSettingsSnippet:
    def test_memory_without_a_redis_url(self) -> None:
        options = cachekit_settings({})
        assert options["driver"] == "memory"
        assert options["config"] == {"max_size": 10_000}

    def test_redis_when_the_url_is_set(self) -> None:
        options = cachekit_settings({"CACHEKIT_REDIS_URL": "redis://cache:6379/1", "CACHEKIT_TTL": "120"})
        assert options["driver"] == "redis"
        assert options["ttl"] == 120.0
        assert options["config"] == {"url": "redis://cache:6379/1", "key_prefix": "myapp:"}


class TestRepositoryReads(ReadCases, TestCase):
    pass


class TestSignalInvalidation(SignalCases, TestCase):
    pass


class TestBulkWrites(BulkCases, TestCase):
    pass


class TestTransactions(TransactionCases, TransactionTestCase):
    pass


class TestViews(ViewCases, TestCase):
    pass


@pytest.mark.redis
class TestOnRedis(RecipeCases, TestCase):
    """The production settings: the same repository and signals against a real Redis."""

    @pytest.fixture(autouse=True)
    def _redis_settings(self, redis_url: str, redis_prefix: str) -> Iterator[None]:
        options = cachekit_settings({"CACHEKIT_REDIS_URL": redis_url, "CACHEKIT_KEY_PREFIX": redis_prefix})
        with override_settings(CACHEKIT=options):
            yield

    def test_hit_then_invalidate(self) -> None:
        assert get_cache().driver.name == "redis"
        assert self.queries(articles.get, self.news.pk)[1] == 1
        assert self.queries(articles.get, self.news.pk)[1] == 0
        assert self.queries(articles.count, **SPORTS) == (1, 1)
        self.news.title = "Budget, on Redis"
        self.news.save()
        assert articles.get(self.news.pk)["title"] == "Budget, on Redis"
        assert self.queries(articles.count, **SPORTS) == (1, 0)
