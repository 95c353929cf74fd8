"""The Django recipe's transaction cases: clears at commit, rollbacks, and a writer against concurrent readers.

Mixins like those of ``django_cases.py``, combined with ``TransactionTestCase`` (real commits) by the test modules.
"""

from __future__ import annotations

import tests.recipes.django_env  # noqa: F401  (configures Django: it must come before any model import)

# isort: split

import contextlib
import threading
import time
from typing import Any

from django.db import connections, transaction

from recipes.django.demoapp.models import Article
from recipes.django.demoapp.repositories import articles
from recipes.django.repository import get_cache
from tests.recipes.django_cases import MISSING, NEWS, RecipeCases


class _Rollback(Exception):
    """Raised to roll a test's transaction back."""


class TransactionCases(RecipeCases):
    """Real transactions (``TransactionTestCase``): clears at commit, nothing cached that a rollback undoes."""

    def test_a_save_in_a_transaction_clears_at_commit(self) -> None:
        old = articles.get(self.news.pk)
        with transaction.atomic(using=self.alias):
            self.news.title = "Budget revised"
            self.news.save()
            # The transaction reads its own write, past the cache; the others still get the committed row.
            assert articles.get(self.news.pk)["title"] == "Budget revised"
            assert self.cached(articles.get, self.news.pk) == old
        assert self.cached(articles.get, self.news.pk) is MISSING
        assert articles.get(self.news.pk)["title"] == "Budget revised"

    def rolled_back(self, body: Any) -> None:
        """Run ``body()`` in a transaction (a savepoint when nested) that then rolls back."""
        with contextlib.suppress(_Rollback), transaction.atomic(using=self.alias):
            body()
            raise _Rollback

    def test_a_read_in_a_transaction_that_rolls_back_is_not_cached(self) -> None:
        def write_then_read() -> None:
            Article.objects.filter(pk=self.news.pk).update(title="Never committed")
            assert articles.get(self.news.pk)["title"] == "Never committed"
            assert articles.count(**NEWS) == 2

        self.rolled_back(write_then_read)
        assert self.cached(articles.get, self.news.pk) is MISSING
        assert self.cached(articles.count, **NEWS) is MISSING
        assert articles.get(self.news.pk)["title"] == "Budget passes"

    def test_a_rolled_back_write_clears_nothing(self) -> None:
        articles.get(self.news.pk)

        def write() -> None:
            self.news.title = "Never committed"
            self.news.save()
            Article.objects.bulk_create([Article(title="Ghost", category="news")])

        self.rolled_back(write)
        row, ran = self.queries(articles.get, self.news.pk)
        assert (row["title"], ran) == ("Budget passes", 0)

    def test_a_rolled_back_savepoint_drops_its_clears_only(self) -> None:
        articles.get(self.news.pk)
        articles.get(self.sports.pk)
        with transaction.atomic(using=self.alias):
            self.sports.title = "Cup final, replayed"
            self.sports.save()
            self.rolled_back(lambda: Article.objects.filter(pk=self.news.pk).update(title="Never committed"))
        assert self.queries(articles.get, self.news.pk)[1] == 0
        assert articles.get(self.sports.pk)["title"] == "Cup final, replayed"

    def test_with_autocommit_off_reads_bypass_the_cache(self) -> None:
        articles.get(self.news.pk)
        transaction.set_autocommit(False, using=self.alias)
        try:
            Article.objects.filter(pk=self.news.pk).update(title="Uncommitted")
            assert articles.get(self.news.pk)["title"] == "Uncommitted"
            transaction.rollback(using=self.alias)
        finally:
            transaction.set_autocommit(True, using=self.alias)
        assert articles.get(self.news.pk)["title"] == "Budget passes"


class ConcurrencyCases(RecipeCases):
    """A writer committing in one connection, readers in four others: no read sees a version older than the last
    commit that returned before the read began."""

    seconds = 10.0
    readers = 4

    def test_no_stale_read_after_commit(self) -> None:
        pk = self.news.pk
        committed = [0]  # the latest version whose commit has returned
        stop = threading.Event()
        stale: list[tuple[str, int, int]] = []
        errors: list[BaseException] = []
        reads = [0] * self.readers

        def read(index: int) -> None:
            try:
                while not stop.is_set():
                    floor = committed[0]
                    row = articles.get(pk)
                    if int(row["body"] or 0) < floor:
                        stale.append(("get", floor, int(row["body"])))
                    floor = committed[0]
                    rows = articles.list(**NEWS)
                    version = next(int(r["body"] or 0) for r in rows if r["id"] == pk)
                    if version < floor:
                        stale.append(("list", floor, version))
                    reads[index] += 2
                    time.sleep(0.0005)  # let the writer run: the GIL would starve it
            except BaseException as exc:
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(self.readers)]
        for thread in threads:
            thread.start()
        version, deadline = 0, time.monotonic() + self.seconds
        try:
            while time.monotonic() < deadline and version < 100_000 and not errors:
                version += 1
                with transaction.atomic(using=self.alias):
                    if version % 2:
                        row = Article.objects.get(pk=pk)
                        row.body = str(version)
                        row.save()
                    else:
                        Article.objects.filter(pk=pk).update(body=str(version))
                committed[0] = version
                time.sleep(0.002)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
        assert not errors, errors
        assert not any(thread.is_alive() for thread in threads)
        assert stale == [], f"{len(stale)} stale reads of {sum(reads)}; first: {stale[:5]}"
        assert version > 20
        assert min(reads) > 0
        assert get_cache().stats().hits > 0  # the readers did read through the cache
