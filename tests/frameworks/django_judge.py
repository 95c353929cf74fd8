"""Django's own cache tests, pointed at ``cachekit.django.CachekitCache``.

What Django's ``runtests.py`` does, reduced to what ``tests/cache`` and ``tests/sessions_tests`` need: the
sdist's ``tests`` directory on ``sys.path`` (its apps are top-level packages: ``cache``, ``sessions_tests``),
those apps installed, templates configured, and a test database for the ``TestCase`` classes (see
:func:`django_databases`). Django's settings can be configured once per process and the recipe tests configure
them too, so this module goes through ``tests.recipes.django_env`` (which configures them, or checks that it was
done) and then adds its apps with ``override_settings(...).enable()``, for the rest of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from tests.frameworks.sdist import sdist_tree

DJANGO_TESTS = sdist_tree("django") / "tests"
BACKEND = "cachekit.django.CachekitCache"
REDIS_URL = os.environ.get("CACHEKIT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: Redis keys of these tests: the process id keeps concurrent runs (other engineers, CI jobs) apart.
REDIS_KEY_PREFIX = f"ckdjango{os.getpid()}:"
_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions", "cache", "sessions_tests"]


def configure() -> None:
    """Make Django's ``cache`` and ``sessions_tests`` test apps importable and installed (idempotent)."""
    if str(DJANGO_TESTS) not in sys.path:
        sys.path.append(str(DJANGO_TESTS))  # appended: its packages never shadow anything installed
    from django.conf import settings
    from django.test import override_settings

    import tests.recipes.django_env  # noqa: F401 - configures Django for the process, or checks it was

    missing = [app for app in _APPS if app not in settings.INSTALLED_APPS]
    if missing:
        override_settings(
            INSTALLED_APPS=[*settings.INSTALLED_APPS, *missing],
            TEMPLATES=[{
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [str(DJANGO_TESTS / "templates")],
                "APP_DIRS": True,
                "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
            }],
        ).enable()


@contextlib.contextmanager
def django_databases() -> Iterator[None]:
    """The test database (SQLite in memory) with every installed app's tables, for one test module."""
    from django.db import connections
    from django.test.runner import DiscoverRunner
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    runner = DiscoverRunner(verbosity=0, interactive=False)
    old_config = runner.setup_databases(aliases={"default"})
    try:
        yield
    finally:
        connections.close_all()
        runner.teardown_databases(old_config)
        teardown_test_environment()


# -- the configurations judged ------------------------------------------------------------------------------------

#: How each configuration turns a cache of Django's tests into one of ours: ``LOCATION`` and ``OPTIONS``.
#: ``location`` is the LOCATION the test gave (memory stores stay apart by it, as LocMemCache's do).
CONFIGS: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "memory": lambda location, directory: {"LOCATION": f"judge-{location}"},
    "filesystem": lambda location, directory: {"LOCATION": os.path.join(directory, location or "default")},
    "redis": lambda location, directory: {
        "LOCATION": REDIS_URL,
        "OPTIONS": {"namespace": f"dj-{location or 'default'}", "config": {"key_prefix": REDIS_KEY_PREFIX}},
    },
    "tiered": lambda location, directory: {
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            "namespace": f"dj-{location or 'default'}",
            "tiers": [{"driver": "memory", "ttl": 60},
                      {"driver": "redis", "config": {"key_prefix": REDIS_KEY_PREFIX + "tiers:"}}],
        },
    },
}


def our_caches(caches: dict[str, dict[str, Any]], config: str, directory: str = "") -> dict[str, dict[str, Any]]:
    """``CACHES`` of one of Django's tests with every backend replaced by ours in ``config``.

    Everything else (``TIMEOUT``, ``KEY_PREFIX``, ``VERSION``, ``KEY_FUNCTION``, culling ``OPTIONS``) is kept.
    """
    ours = {}
    for alias, params in caches.items():
        converted = {k: v for k, v in params.items() if k not in ("BACKEND", "LOCATION")}
        converted.update(CONFIGS[config](str(params.get("LOCATION", "")), directory))
        if "OPTIONS" in params:  # Django's culling options win over the configuration's
            converted["OPTIONS"] = {**converted.get("OPTIONS", {}), **params["OPTIONS"]}
        converted["BACKEND"] = BACKEND
        ours[alias] = converted
    return ours


def base_caches(config: str, directory: str = "", exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What ``caches_setting_for_tests`` gives Django's backend tests, for our backend in ``config``."""
    from cache.tests import caches_setting_for_tests

    return our_caches(caches_setting_for_tests(exclude=set(exclude)), config, directory)


# -- the async API, judged by the same tests ---------------------------------------------------------------------

#: The sync methods Django's tests call on ``cache`` and the async twins the proxy sends them to.
ASYNC_TWINS = ("get", "set", "add", "delete", "touch", "incr", "decr", "get_many", "set_many", "delete_many",
               "has_key", "clear", "get_or_set", "incr_version", "decr_version", "close")


class AsyncDriven:
    """Stands for ``django.core.cache.cache`` in Django's test module: each call of the sync API runs the async
    twin (``cache.get(...)`` is ``runner.run(backend.aget(...))``), so ``BaseCacheTests`` judges the ``a*``
    methods. Attributes (``key_func``, ``_max_entries``) pass through to the real backend."""

    def __init__(self, backend: Callable[[], Any], runner: asyncio.Runner) -> None:
        object.__setattr__(self, "_backend", backend)
        object.__setattr__(self, "_runner", runner)

    def __getattr__(self, name: str) -> Any:
        backend = self._backend()
        if name not in ASYNC_TWINS:
            return getattr(backend, name)
        twin = getattr(backend, "a" + name)
        return lambda *args, **kwargs: self._runner.run(twin(*args, **kwargs))

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._backend(), name, value)

    def __contains__(self, key: Any) -> bool:
        return bool(self._runner.run(self._backend().ahas_key(key)))
