"""Flask-Caching's own test suite, from its sdist, turned on ``cachekit.flask.CachekitCache``.

Its backend tests are the class ``GenericCacheTests`` in ``tests/test_backend_cache.py``, which Flask-Caching
subclasses per backend (``make_cache`` builds one); :func:`generic_tests` returns it. Its app tests
(``@cache.cached``, ``@cache.memoize``, views, templates, signals ...) take the fixtures ``app`` and ``cache`` from
its ``conftest.py``; :func:`export_app_tests` copies every such test (and the fixtures its module defines) into a
test module of ours, where our ``app`` fixture gives them an app whose ``CACHE_TYPE`` is ours. A copied test keeps
its own code: only its name gains the module's (``test_memoize__memoize_delete``).

The tests that configure another backend on purpose (``CACHE_TYPE = "SimpleCache"``, a ``RedisCache`` on port
6360, cachelib classes) or read another backend's internals are skipped, each with its reason in :data:`SKIPPED`.
Tests that use no cache backend at all (``CachedResponse``'s signature) are not copied.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _pytest.fixtures import FixtureFunctionDefinition

from tests.frameworks.sdist import sdist_tree

__all__ = ["APP_MODULES", "OVERRIDDEN_FIXTURES", "SKIPPED", "export_app_tests", "generic_tests", "suite_dir"]

#: Flask-Caching's test modules whose app tests run on our backend.
APP_MODULES = (
    "test_basic_app", "test_cache", "test_cachelib", "test_hash_method", "test_init", "test_memoize",
    "test_py314_annotations", "test_serializer", "test_signals", "test_subclassing", "test_templates", "test_view",
)
#: Fixtures of Flask-Caching's conftest (or of a module) that the test module of ours defines instead.
OVERRIDDEN_FIXTURES = frozenset({"app", "cache", "clock", "hash_method"})
#: Fixtures that lead to the backend: a test that requests none of them (directly or through a fixture of its
#: module) does not exercise a backend, so it is not copied.
_BACKEND_FIXTURES = frozenset({"app", "cache"})

_OTHER = "configures another backend on purpose"
#: ``(module, test) -> reason`` for every copied test that is skipped.
SKIPPED: dict[tuple[str, str], str] = {
    ("test_cache", "test_cache_unlink"): f"{_OTHER} (RedisCache on port 6360)",
    ("test_cache", "test_cache_unlink_if_not"): f"{_OTHER} (SimpleCache)",
    ("test_cache", "test_cache_delete_many_ignored"): f"{_OTHER} (SimpleCache)",
    ("test_basic_app", "test_dict_config"): f"{_OTHER} (SimpleCache)",
    ("test_basic_app", "test_dict_config_initapp"): f"{_OTHER} (SimpleCache)",
    ("test_basic_app", "test_dict_config_both"): f"{_OTHER} (NullCache, then SimpleCache)",
    ("test_basic_app", "test_init_app_multi_apps"): f"{_OTHER} (RedisCache on port 6360)",
    ("test_basic_app", "test_app_redis_cache_backend_url_default_db"): "RedisCache's client internals (_write_client)",
    ("test_basic_app", "test_app_redis_cache_backend_url_custom_db"): "RedisCache's client internals (_write_client)",
    ("test_basic_app", "test_app_redis_cache_backend_url_explicit_db_arg"):
        "RedisCache's client internals (_write_client)",
    ("test_basic_app", "test_app_custom_cache_backend"): f"{_OTHER} (a SimpleCache factory of the test module)",
    ("test_cachelib", "test_cachelib_class_as_cache_type"): f"{_OTHER} (cachelib classes as CACHE_TYPE)",
    ("test_cachelib", "test_cachelib_backend_gets_default_timeout"): f"{_OTHER} (cachelib.SimpleCache)",
    ("test_cachelib", "test_cachelib_backend_gets_cache_options"): f"{_OTHER} (cachelib.SimpleCache)",
    ("test_cachelib", "test_cachelib_backend_gets_cache_args"): f"{_OTHER} (cachelib.FileSystemCache)",
    ("test_cachelib", "test_cachelib_backend_proxy_methods"): f"{_OTHER} (cachelib.SimpleCache)",
    ("test_cachelib", "test_cachelib_backend_with_cached_view"): f"{_OTHER} (cachelib.SimpleCache)",
    ("test_cachelib", "test_cachelib_backend_with_memoize"): f"{_OTHER} (cachelib.SimpleCache)",
    ("test_hash_method", "test_file_hash_method_is_independent"): "FileSystemCache's internals (_hash_method)",
    ("test_init", "test_init_nullcache"): f"{_OTHER} (each of Flask-Caching's backend classes)",
    ("test_serializer", "test_values_are_stored_in_the_configured_format"): "SimpleCache's internals (_cache)",
    ("test_serializer", "test_cachelib_cache_type_gets_the_serializer"): f"{_OTHER} (cachelib.SimpleCache)",
    ("test_serializer", "test_backend_without_serializer_warns"): f"{_OTHER} (NullCache)",
    ("test_serializer", "test_serializer_is_rejected_before_the_backend_is_built"): f"{_OTHER} (RedisCache)",
}


def suite_dir() -> Path:
    """Flask-Caching's ``tests`` directory, from the sdist of the installed version (fetched once per machine)."""
    return sdist_tree("flask-caching") / "tests"


def _load(name: str) -> ModuleType:
    path = suite_dir() / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"flask_caching_suite.{name}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def generic_tests() -> type:
    """Flask-Caching's ``GenericCacheTests``: subclass it and give it a ``make_cache`` fixture."""
    cls: type = _load("test_backend_cache").GenericCacheTests
    return cls


def _is_fixture(value: object) -> bool:
    # isinstance only: a module's globals include werkzeug proxies (flask.request), which raise on getattr
    return isinstance(value, FixtureFunctionDefinition)


def _parameters(value: Any) -> set[str]:
    function = getattr(value, "_get_wrapped_function", lambda: None)() or getattr(value, "__wrapped__", value)
    return set(inspect.signature(function).parameters)


def export_app_tests(namespace: dict[str, Any]) -> list[str]:
    """Copy the app tests of :data:`APP_MODULES` (and their modules' fixtures) into ``namespace``.

    Returns the names given to the copied tests. Module-level marks (``pytestmark``) are carried over.
    """
    exported = []
    for name in APP_MODULES:
        module = _load(name)
        marks = getattr(module, "pytestmark", [])
        marks = marks if isinstance(marks, list) else [marks]
        fixtures = {k: v for k, v in vars(module).items() if _is_fixture(v) and k not in OVERRIDDEN_FIXTURES}
        reaching = set(_BACKEND_FIXTURES) | {k for k, v in fixtures.items() if _parameters(v) & _BACKEND_FIXTURES}
        for fixture_name, fixture in fixtures.items():
            if fixture_name in namespace:
                raise RuntimeError(f"fixture {fixture_name!r} of {name} collides with one of ours")
            namespace[fixture_name] = fixture
        short = name.removeprefix("test_")
        for test_name, function in vars(module).items():
            if not (test_name.startswith("test_") and inspect.isfunction(function)):
                continue
            if not _parameters(function) & reaching:
                continue
            test = function
            reason = SKIPPED.get((name, test_name))
            if reason is not None:
                test = pytest.mark.skip(reason=f"Flask-Caching's {test_name}: {reason}")(test)
            for mark in marks:
                test = mark(test)
            exported_name = f"test_{short}__{test_name.removeprefix('test_')}"
            namespace[exported_name] = test
            exported.append(exported_name)
    missing = {key for key in SKIPPED if f"test_{key[0].removeprefix('test_')}__{key[1][5:]}" not in exported}
    if missing:
        raise RuntimeError(f"SKIPPED names tests the suite no longer has: {sorted(missing)}")
    return exported
