"""The Django recipe under Django's own test machinery: SQLite in memory, ``TestCase``, the test ``Client``.

Every module imported from ``recipes/django`` here is the file the recipe's README tells users to copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings

from recipes.django.settings_snippet import cachekit_settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="cachekit-recipes-tests",
        INSTALLED_APPS=["recipes.django.demoapp"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        ROOT_URLCONF="recipes.django.demoapp.urls",
        MIDDLEWARE=[],
        USE_TZ=True,
        CACHEKIT=cachekit_settings({}),
    )
    django.setup()

from django.db import connection
from django.test import TestCase, override_settings
from django.test.runner import DiscoverRunner
from django.test.utils import CaptureQueriesContext, setup_test_environment, teardown_test_environment

from recipes.django.demoapp.models import Article
from recipes.django.demoapp.repositories import articles
from recipes.django.repository import get_cache, reset_cache
from recipes.django.signals_invalidation import connect_invalidation, disconnect_invalidation

NEWS = {"partition": "by_category", "partition_values": {"category": "news"}}
SPORTS = {"partition": "by_category", "partition_values": {"category": "sports"}}


@pytest.fixture(scope="module", autouse=True)
def _django_test_database() -> Iterator[None]:
    """What ``manage.py test`` does around a run: the test environment and the test database."""
    setup_test_environment()
    runner = DiscoverRunner(verbosity=0, interactive=False)
    old_config = runner.setup_databases()
    yield
    runner.teardown_databases(old_config)
    teardown_test_environment()
    reset_cache()


def queries(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """``call(*args, **kwargs)`` and how many SQL queries it ran."""
    with CaptureQueriesContext(connection) as captured:
        result = call(*args, **kwargs)
    return result, len(captured)


class RecipeTestCase(TestCase):
    """Each test starts with an empty cache: the database rolls back between tests, the cache would not."""

    def setUp(self) -> None:
        reset_cache()
        self.news = Article.objects.create(title="Budget passes", category="news")
        self.other_news = Article.objects.create(title="Storm warning", category="news")
        self.sports = Article.objects.create(title="Cup final", category="sports")


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


class TestRepositoryReads(RecipeTestCase):
    def test_second_get_runs_no_query(self) -> None:
        first, first_queries = queries(articles.get, self.news.pk)
        second, second_queries = queries(articles.get, self.news.pk)
        assert first["title"] == "Budget passes"
        assert second == first
        assert (first_queries, second_queries) == (1, 0)

    def test_missing_row_is_cached_as_none(self) -> None:
        assert queries(articles.get, 10_000) == (None, 1)
        assert queries(articles.get, 10_000) == (None, 0)

    def test_lists_and_counts_hit_per_arguments(self) -> None:
        assert queries(articles.count) == (3, 1)
        assert queries(articles.count) == (3, 0)
        assert queries(articles.count, **NEWS) == (2, 1)
        assert queries(articles.count, **NEWS) == (2, 0)
        page, ran = queries(articles.list, limit=2)
        assert (len(page), ran) == (2, 1)
        assert queries(articles.list, limit=2) == (page, 0)
        # Another page is another entry, not the first page again.
        rest, ran = queries(articles.list, limit=2, offset=2)
        assert (len(rest), ran) == (1, 1)
        assert {r["id"] for r in page + rest} == {self.news.pk, self.other_news.pk, self.sports.pk}

    def test_an_unknown_partition_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown partition 'by_author'"):
            articles.count(partition="by_author", partition_values={"author": 1})

    def test_cache_is_built_from_settings(self) -> None:
        assert get_cache().driver.name == "memory"
        with override_settings(CACHEKIT={"driver": "null", "namespace": "off"}):
            assert get_cache().driver.name == "null"
            # A null cache stores nothing: every read queries.
            assert queries(articles.get, self.news.pk)[1] == 1
            assert queries(articles.get, self.news.pk)[1] == 1
        assert get_cache().driver.name == "memory"


class TestSignalInvalidation(RecipeTestCase):
    def test_save_invalidates_the_row(self) -> None:
        articles.get(self.news.pk)
        self.news.title = "Budget fails"
        self.news.save()
        fresh, ran = queries(articles.get, self.news.pk)
        assert fresh["title"] == "Budget fails"
        assert ran == 1

    def test_create_invalidates_lists_counts_and_a_cached_miss(self) -> None:
        assert articles.count() == 3
        assert len(articles.list()) == 3
        assert articles.get(self.sports.pk + 1) is None
        created = Article.objects.create(title="Transfer news", category="sports")
        assert created.pk == self.sports.pk + 1
        assert articles.count() == 4
        assert created.pk in {r["id"] for r in articles.list()}
        assert articles.get(created.pk)["title"] == "Transfer news"

    def test_delete_invalidates_the_row_and_aggregates(self) -> None:
        assert articles.get(self.news.pk) is not None
        assert articles.get(self.other_news.pk) is not None
        assert articles.count(**NEWS) == 2
        self.news.delete()
        assert queries(articles.get, self.news.pk) == (None, 1)
        # Other rows' entries are kept.
        assert queries(articles.get, self.other_news.pk)[1] == 0
        assert articles.count(**NEWS) == 1
        assert articles.count() == 2

    def test_queryset_delete_sends_signals_too(self) -> None:
        assert articles.count(**SPORTS) == 1
        Article.objects.filter(category="sports").delete()
        assert articles.count(**SPORTS) == 0

    def test_save_within_a_partition_keeps_other_partitions(self) -> None:
        for scope in (NEWS, SPORTS):
            articles.count(**scope)
            articles.list(**scope)
        self.news.title = "Budget amended"
        self.news.save()
        assert queries(articles.count, **SPORTS) == (1, 0)
        assert queries(articles.list, **SPORTS)[1] == 0
        assert queries(articles.count, **NEWS) == (2, 1)
        titles, ran = queries(articles.list, **NEWS)
        assert ran == 1
        assert "Budget amended" in {r["title"] for r in titles}

    def test_moving_a_row_clears_its_old_and_new_partition_only(self) -> None:
        Article.objects.create(title="Gallery opens", category="culture")
        for scope in (NEWS, SPORTS):
            articles.count(**scope)
        culture = {"partition": "by_category", "partition_values": {"category": "culture"}}
        articles.count(**culture)
        self.news.category = "sports"
        self.news.save()
        assert queries(articles.count, **NEWS) == (1, 1)
        assert queries(articles.count, **SPORTS) == (2, 1)
        assert queries(articles.count, **culture) == (1, 0)

    def test_invalidation_runs_again_at_commit(self) -> None:
        key = articles.get.cache_key(self.news.pk)
        with self.captureOnCommitCallbacks(execute=True) as callbacks:
            self.news.title = "Budget revised"
            self.news.save()
            # A concurrent request cached the old committed row between the write and the commit.
            get_cache().set(key, {"id": self.news.pk, "title": "Budget passes"})
        assert len(callbacks) == 1
        assert articles.get(self.news.pk)["title"] == "Budget revised"

    def test_without_the_signals_reads_go_stale(self) -> None:
        # The control for the tests above: they pass because of the receivers, not by accident.
        articles.get(self.news.pk)
        disconnect_invalidation(articles)
        try:
            self.news.title = "Unseen edit"
            self.news.save()
            assert articles.get(self.news.pk)["title"] == "Budget passes"
        finally:
            connect_invalidation(articles)

    def test_queryset_update_needs_invalidate_all(self) -> None:
        assert articles.get(self.news.pk)["title"] == "Budget passes"
        Article.objects.filter(pk=self.news.pk).update(title="Bulk edit")
        assert articles.get(self.news.pk)["title"] == "Budget passes"
        assert articles.invalidate_all() > 0
        assert articles.get(self.news.pk)["title"] == "Bulk edit"


class TestViews(RecipeTestCase):
    def test_detail_is_cached_and_fresh_after_an_update(self) -> None:
        url = f"/articles/{self.news.pk}/"
        with CaptureQueriesContext(connection) as first:
            response = self.client.get(url)
        assert response.status_code == 200
        assert response.json()["title"] == "Budget passes"
        with CaptureQueriesContext(connection) as second:
            assert self.client.get(url).json()["title"] == "Budget passes"
        assert (len(first), len(second)) == (1, 0)
        self.news.title = "Budget passes, finally"
        self.news.save()
        assert self.client.get(url).json()["title"] == "Budget passes, finally"

    def test_detail_of_a_missing_row_is_404(self) -> None:
        response = self.client.get("/articles/999999/")
        assert response.status_code == 404
        assert "999999" in response.json()["error"]

    def test_list_by_partition_and_fresh_after_create(self) -> None:
        body = self.client.get("/articles/", {"category": "news", "limit": 10}).json()
        assert body["count"] == 2
        assert {r["category"] for r in body["items"]} == {"news"}
        with CaptureQueriesContext(connection) as cached_read:
            self.client.get("/articles/", {"category": "news", "limit": 10})
        assert len(cached_read) == 0
        Article.objects.create(title="Election called", category="news")
        body = self.client.get("/articles/", {"category": "news", "limit": 10}).json()
        assert body["count"] == 3
        assert "Election called" in {r["title"] for r in body["items"]}

    def test_list_pages(self) -> None:
        body = self.client.get("/articles/", {"limit": 2, "offset": 2}).json()
        assert (body["count"], len(body["items"]), body["offset"]) == (3, 1, 2)

    def test_bad_paging_is_400(self) -> None:
        for params in ({"limit": "ten"}, {"limit": 0}, {"limit": 1000}, {"offset": -1}):
            response = self.client.get("/articles/", params)
            assert response.status_code == 400, params
            assert "must be" in response.json()["error"]

    def test_writes_are_not_allowed(self) -> None:
        assert self.client.post("/articles/", {}).status_code == 405


@pytest.mark.redis
class TestOnRedis(RecipeTestCase):
    """The production settings: the same repository and signals against a real Redis."""

    @pytest.fixture(autouse=True)
    def _redis_settings(self, redis_url: str, redis_prefix: str) -> Iterator[None]:
        options = cachekit_settings({"CACHEKIT_REDIS_URL": redis_url, "CACHEKIT_KEY_PREFIX": redis_prefix})
        with override_settings(CACHEKIT=options):
            yield

    def test_hit_then_invalidate(self) -> None:
        assert get_cache().driver.name == "redis"
        assert queries(articles.get, self.news.pk)[1] == 1
        assert queries(articles.get, self.news.pk)[1] == 0
        assert queries(articles.count, **SPORTS) == (1, 1)
        self.news.title = "Budget, on Redis"
        self.news.save()
        assert articles.get(self.news.pk)["title"] == "Budget, on Redis"
        assert queries(articles.count, **SPORTS) == (1, 0)
