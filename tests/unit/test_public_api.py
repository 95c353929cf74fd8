"""The public API: what ``import cachekit`` exports, and what it does not drag in."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

import cachekit
import cachekit.errors

# The names of DESIGN.md's "Public API" block and its "API details" section.
DESIGN_NAMES = {
    "Cache", "CachePlugin", "cached", "invalidates", "register_key_resolver", "KeySpec", "MISSING", "DEFAULT",
    "register_driver", "stable_hash", "CacheStats", "Driver", "MethodPolicy", "Invalidation", "Namespace",
    "DEFAULT_TTL",
}
DESIGN_ERRORS = {"CacheError", "ConfigurationError", "SerializationError", "DriverUnavailable"}
OPTIONAL_BACKENDS = ("redis", "boto3", "botocore", "diskcache")


def isort_style(name: str) -> tuple[int, str]:
    """ruff's RUF022 order, used across the package: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def run_python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


def test_all_is_sorted() -> None:
    assert cachekit.__all__ == sorted(cachekit.__all__, key=isort_style)
    assert cachekit.errors.__all__ == sorted(cachekit.errors.__all__, key=isort_style)
    assert len(set(cachekit.__all__)) == len(cachekit.__all__)


def test_all_holds_every_design_name_and_each_resolves() -> None:
    assert set(cachekit.__all__) >= DESIGN_NAMES
    for name in cachekit.__all__:
        assert getattr(cachekit, name) is not None, name
    assert set(cachekit.errors.__all__) >= DESIGN_ERRORS
    for name in cachekit.errors.__all__:
        assert issubclass(getattr(cachekit.errors, name), (Exception, Warning))


def test_all_is_complete() -> None:
    public = {
        name for name, value in vars(cachekit).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert public <= set(cachekit.__all__), public - set(cachekit.__all__)


def test_the_design_import_lines_work() -> None:
    from cachekit import Cache, CachePlugin, KeySpec, cached, invalidates, register_key_resolver  # noqa: F401
    from cachekit.errors import CacheError, ConfigurationError, DriverUnavailable, SerializationError  # noqa: F401


def test_unknown_attributes_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        cachekit.no_such_name  # noqa: B018


def test_version() -> None:
    assert isinstance(cachekit.__version__, str)
    assert cachekit.__version__.count(".") >= 1


def test_import_cachekit_does_not_import_optional_backends() -> None:
    code = (
        "import json, sys\n"
        "import cachekit\n"
        "cachekit.Cache(driver='memory').set('k', 1)\n"
        f"print(json.dumps([m for m in {OPTIONAL_BACKENDS!r} if m in sys.modules]))"
    )
    assert json.loads(run_python(code)) == []


def test_star_import_works_in_a_fresh_process() -> None:
    code = "import json\nfrom cachekit import *\nprint(json.dumps(sorted(k for k in dir() if not k[0] == '_')))"
    names = set(json.loads(run_python(code)))
    assert names >= set(cachekit.__all__)
