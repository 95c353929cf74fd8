"""The Django recipe's test cases, run by ``test_django_recipe.py`` (SQLite) and ``test_django_postgres.py``.

Mixins, not test classes: each test module combines them with ``TestCase`` or ``TransactionTestCase`` and the
database alias it runs on. Every module imported from ``recipes/django`` is the file the README tells users to
copy, unchanged.
"""

from __future__ import annotations

import tests.recipes.django_env  # noqa: F401  (configures Django: it must come before any model import)

# isort: split

from typing import Any

import pytest
from django.db import connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from recipes.django.demoapp.models import Article
from recipes.django.demoapp.repositories import articles
from recipes.django.repository import get_cache, reset_cache
from recipes.django.signals_invalidation import connect_invalidation, disconnect_invalidation

NEWS = {"partition": "by_category", "partition_values": {"category": "news"}}
SPORTS = {"partition": "by_category", "partition_values": {"category": "sports"}}
CULTURE = {"partition": "by_category", "partition_values": {"category": "culture"}}
MISSING = object()



class RecipeCases:
    """Each test starts with an empty cache and three articles (the database is reset between tests)."""

    alias = "default"

    @property
    def connection(self) -> Any:
        return connections[self.alias]

    def queries(self, call: Any, *args: Any, **kwargs: Any) -> tuple[Any, int]:
        """``call(*args, **kwargs)`` and how many SQL queries it ran."""
        with CaptureQueriesContext(self.connection) as captured:
            result = call(*args, **kwargs)
        return result, len(captured)

    def cached(self, call: Any, *args: Any, **kwargs: Any) -> Any:
        """The entry ``call(*args, **kwargs)`` would read, or :data:`MISSING`."""
        return get_cache().get(call.cache_key(*args, **kwargs), MISSING)

    def setUp(self) -> None:
        reset_cache()
        self.news = Article.objects.create(title="Budget passes", category="news")
        self.other_news = Article.objects.create(title="Storm warning", category="news")
        self.sports = Article.objects.create(title="Cup final", category="sports")


class ReadCases(RecipeCases):
    def test_second_get_runs_no_query(self) -> None:
        first, first_queries = self.queries(articles.get, self.news.pk)
        second, second_queries = self.queries(articles.get, self.news.pk)
        assert first["title"] == "Budget passes"
        assert second == first
        assert (first_queries, second_queries) == (1, 0)

    def test_missing_row_is_cached_as_none(self) -> None:
        assert self.queries(articles.get, 10_000) == (None, 1)
        assert self.queries(articles.get, 10_000) == (None, 0)

    def test_lists_and_counts_hit_per_arguments(self) -> None:
        assert self.queries(articles.count) == (3, 1)
        assert self.queries(articles.count) == (3, 0)
        assert self.queries(articles.count, **NEWS) == (2, 1)
        assert self.queries(articles.count, **NEWS) == (2, 0)
        page, ran = self.queries(articles.list, limit=2)
        assert (len(page), ran) == (2, 1)
        assert self.queries(articles.list, limit=2) == (page, 0)
        # Another page is another entry, not the first page again.
        rest, ran = self.queries(articles.list, limit=2, offset=2)
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
            assert self.queries(articles.get, self.news.pk)[1] == 1
            assert self.queries(articles.get, self.news.pk)[1] == 1
        assert get_cache().driver.name == "memory"


class SignalCases(RecipeCases):
    def test_save_invalidates_the_row(self) -> None:
        articles.get(self.news.pk)
        self.news.title = "Budget fails"
        self.news.save()
        fresh, ran = self.queries(articles.get, self.news.pk)
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
        assert self.queries(articles.get, self.news.pk) == (None, 1)
        # Other rows' entries are kept.
        assert self.queries(articles.get, self.other_news.pk)[1] == 0
        assert articles.count(**NEWS) == 1
        assert articles.count() == 2

    def test_save_within_a_partition_keeps_other_partitions(self) -> None:
        for scope in (NEWS, SPORTS):
            articles.count(**scope)
            articles.list(**scope)
        self.news.title = "Budget amended"
        self.news.save()
        assert self.queries(articles.count, **SPORTS) == (1, 0)
        assert self.queries(articles.list, **SPORTS)[1] == 0
        assert self.queries(articles.count, **NEWS) == (2, 1)
        titles, ran = self.queries(articles.list, **NEWS)
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
        assert self.queries(articles.count, **NEWS) == (1, 1)
        assert self.queries(articles.count, **SPORTS) == (2, 1)
        assert self.queries(articles.count, **culture) == (1, 0)

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

class ViewCases(RecipeCases):
    def test_detail_is_cached_and_fresh_after_an_update(self) -> None:
        url = f"/articles/{self.news.pk}/"
        with CaptureQueriesContext(self.connection) as first:
            response = self.client.get(url)
        assert response.status_code == 200
        assert response.json()["title"] == "Budget passes"
        with CaptureQueriesContext(self.connection) as second:
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
        with CaptureQueriesContext(self.connection) as cached_read:
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


class BulkCases(RecipeCases):
    """``InvalidatingManager``: update(), bulk_create(), bulk_update() and delete() clear what they touch."""

    def warm(self, *scopes: dict[str, Any]) -> None:
        articles.count()
        for scope in scopes:
            articles.count(**scope)
            articles.list(**scope)

    def test_update_by_pk_clears_those_rows_and_the_aggregates(self) -> None:
        articles.get(self.news.pk)
        articles.get(self.sports.pk)
        self.warm(NEWS)
        assert Article.objects.filter(pk=self.news.pk).update(title="Bulk edit") == 1
        assert self.queries(articles.get, self.news.pk)[0]["title"] == "Bulk edit"
        assert self.queries(articles.get, self.sports.pk)[1] == 0  # another row: still cached
        titles, ran = self.queries(articles.list, **NEWS)
        assert ran == 1
        assert "Bulk edit" in {r["title"] for r in titles}

    def test_update_by_a_list_of_pks(self) -> None:
        pks = [self.news.pk, self.sports.pk]
        for pk in (*pks, self.other_news.pk):
            articles.get(pk)
        assert Article.objects.filter(pk__in=pks).update(body="edited") == 2
        assert [articles.get(pk)["body"] for pk in pks] == ["edited", "edited"]
        assert self.queries(articles.get, self.other_news.pk)[1] == 0

    def test_update_by_another_filter_clears_the_whole_model(self) -> None:
        articles.get(self.sports.pk)
        self.warm(SPORTS)
        assert Article.objects.filter(category="news").update(category="culture") == 2
        # The updated ids are not known without a query: every entry of the model goes.
        assert self.queries(articles.get, self.sports.pk)[1] == 1
        assert articles.count(**NEWS) == 0
        assert articles.count(**CULTURE) == 2

    def test_update_of_no_row_clears_nothing(self) -> None:
        articles.get(self.news.pk)
        assert Article.objects.filter(pk=10_000_000).update(title="nobody") == 0
        assert self.queries(articles.get, self.news.pk)[1] == 0

    def test_bulk_create_clears_lists_counts_and_its_partitions_only(self) -> None:
        self.warm(NEWS, SPORTS)
        next_pk = self.sports.pk + 1
        assert articles.get(next_pk) is None  # a cached "not found"
        created = Article.objects.bulk_create([Article(title="Derby", category="sports")])
        assert created[0].pk == next_pk
        assert articles.get(next_pk)["title"] == "Derby"
        assert self.queries(articles.count, **SPORTS) == (2, 1)
        assert self.queries(articles.count, **NEWS) == (2, 0)  # the other partition stays cached
        assert articles.count() == 4

    def test_bulk_update_of_a_partition_field_clears_old_and_new_partitions(self) -> None:
        self.warm(NEWS, SPORTS, CULTURE)
        articles.get(self.news.pk)
        self.news.category = "culture"
        assert Article.objects.bulk_update([self.news], ["category"]) == 1
        assert articles.get(self.news.pk)["category"] == "culture"
        assert self.queries(articles.count, **NEWS) == (1, 1)
        assert self.queries(articles.count, **CULTURE) == (1, 1)
        assert self.queries(articles.count, **SPORTS) == (1, 0)

    def test_bulk_update_of_other_fields_keeps_other_partitions(self) -> None:
        self.warm(NEWS, SPORTS)
        self.news.title, self.other_news.title = "One", "Two"
        assert Article.objects.bulk_update([self.news, self.other_news], ["title"]) == 2
        titles, ran = self.queries(articles.list, **NEWS)
        assert ran == 1
        assert {r["title"] for r in titles} == {"One", "Two"}
        assert self.queries(articles.list, **SPORTS)[1] == 0

    def test_queryset_delete_clears_the_rows_and_their_partition(self) -> None:
        self.warm(NEWS, SPORTS)
        for pk in (self.news.pk, self.sports.pk):
            articles.get(pk)
        deleted, _ = Article.objects.filter(category="news").delete()
        assert deleted == 2
        assert articles.get(self.news.pk) is None
        assert articles.get(self.other_news.pk) is None
        assert self.queries(articles.count, **NEWS) == (0, 1)
        assert self.queries(articles.count, **SPORTS) == (1, 0)
        assert self.queries(articles.get, self.sports.pk)[1] == 0

    def test_without_the_connected_repository_bulk_writes_go_stale(self) -> None:
        # The control for the tests above: the manager clears through the connected repository.
        articles.get(self.news.pk)
        disconnect_invalidation(articles)
        try:
            Article.objects.filter(pk=self.news.pk).update(title="Unseen bulk edit")
            assert articles.get(self.news.pk)["title"] == "Budget passes"
        finally:
            connect_invalidation(articles)
        assert articles.invalidate_all() > 0  # raw SQL's way out
        assert articles.get(self.news.pk)["title"] == "Unseen bulk edit"
