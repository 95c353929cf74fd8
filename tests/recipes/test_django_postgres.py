"""The Django recipe on PostgreSQL (psycopg 3): the cases of ``test_django_recipe.py``, real transactions, and a
writer against four concurrent readers.

The database is ``CACHEKIT_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``, started by
``.ci/ensure-postgres``); Django's test runner creates a test database of this process's own and drops it.
Locally the module is skipped without a PostgreSQL; in CI it fails.
"""

from __future__ import annotations

import tests.recipes.django_env  # noqa: F401  (configures Django: it must come before any model import)

# isort: split

from collections.abc import Iterator

import pytest
from django.test import TestCase, TransactionTestCase

from tests.recipes.django_cases import (
    BulkCases,
    ReadCases,
    SignalCases,
    ViewCases,
)
from tests.recipes.django_env import django_module
from tests.recipes.django_transaction_cases import ConcurrencyCases, TransactionCases
from tests.recipes.postgres import postgres_reachable

ALIAS = "postgres"


@pytest.fixture(scope="module", autouse=True)
def _django_test_database() -> Iterator[None]:
    postgres_reachable()
    with django_module(ALIAS):
        yield


class TestRepositoryReads(ReadCases, TestCase):
    alias = ALIAS
    databases = {ALIAS}


class TestSignalInvalidation(SignalCases, TestCase):
    alias = ALIAS
    databases = {ALIAS}


class TestBulkWrites(BulkCases, TestCase):
    alias = ALIAS
    databases = {ALIAS}


class TestTransactions(TransactionCases, TransactionTestCase):
    alias = ALIAS
    databases = {ALIAS}


class TestViews(ViewCases, TestCase):
    alias = ALIAS
    databases = {ALIAS}


@pytest.mark.slow
class TestConcurrentReaders(ConcurrencyCases, TransactionTestCase):
    alias = ALIAS
    databases = {ALIAS}
