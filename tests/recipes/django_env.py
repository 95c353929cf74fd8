"""Django for the recipe tests: one settings object for the process, per-module overrides, test databases.

``settings.configure()`` can run once per process, so every Django test module calls :func:`configure`, which
declares both databases the tests use (``default``: SQLite in memory; ``postgres``: the machine's PostgreSQL,
``CACHEKIT_TEST_POSTGRES_URL``), and then puts what is its own (a database router, ``CACHEKIT``) in a
module-scoped :func:`django_module` fixture that undoes it afterwards, so nothing leaks into the next module.
Django creates each module's test database (for PostgreSQL one named after this process) and drops it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import django
from django.conf import settings

from recipes.django.settings_snippet import cachekit_settings
from tests.recipes.postgres import POSTGRES_URL

APP = "recipes.django.demoapp"


def _postgres(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/") or "test",
        "USER": parts.username or "postgres",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        # A database of this process's own, created and dropped by Django's test runner.
        "TEST": {"NAME": f"test_cachekit_recipes_{os.getpid()}", "DEPENDENCIES": []},
    }


def _databases() -> dict[str, Any]:
    databases: dict[str, Any] = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    if importlib.util.find_spec("psycopg") is not None:
        # Without psycopg the alias would break every module's set-up; the PostgreSQL module then skips (or, in
        # CI, fails) on its own check.
        databases["postgres"] = _postgres(POSTGRES_URL)
    return databases


def configure() -> None:
    """Configure Django once for the process (idempotent), with the recipe's demo app installed."""
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="cachekit-recipes-tests",
            INSTALLED_APPS=[APP],
            DATABASES=_databases(),
            ROOT_URLCONF="recipes.django.demoapp.urls",
            MIDDLEWARE=[],
            USE_TZ=True,
            CACHEKIT=cachekit_settings({}),
        )
        django.setup()
    if APP not in settings.INSTALLED_APPS:
        raise RuntimeError(f"Django was configured elsewhere in this process without {APP}; run these tests apart")


class UseDatabase:
    """A database router sending every model to one alias (how a module runs the recipe on PostgreSQL)."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return self.alias

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return self.alias

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == self.alias


@contextlib.contextmanager
def django_module(alias: str) -> Iterator[None]:
    """What ``manage.py test`` does around a run, for one module: its router, its test database, a fresh cache."""
    from django.test import override_settings
    from django.test.runner import DiscoverRunner
    from django.test.utils import setup_test_environment, teardown_test_environment

    from recipes.django.repository import reset_cache

    with override_settings(DATABASE_ROUTERS=[UseDatabase(alias)], CACHEKIT=cachekit_settings({})):
        setup_test_environment()
        runner = DiscoverRunner(verbosity=0, interactive=False)
        old_config = runner.setup_databases(aliases={alias})
        try:
            yield
        finally:
            from django.db import connections

            connections.close_all()
            runner.teardown_databases(old_config)
            teardown_test_environment()
            reset_cache()


# Importing this module configures Django, so the test modules can import models right after it.
configure()
