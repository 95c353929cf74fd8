"""The public API: what ``import cachekit`` exports, and what it does not drag in."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import cachekit
import cachekit.errors

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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


# -- what `import cachekit` costs, what help() shows, what the wheel ships ---------------------------------------

ASYNCIO_TRACER = (
    "import json, sys, traceback\n"
    "importers = []\n"
    "class Tracer:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'asyncio':\n"
    "            ours = [f.filename for f in traceback.extract_stack() if '/cachekit/' in f.filename]\n"
    "            importers.extend(ours[-1:])  # the innermost: the module whose import statement it is\n"
    "        return None\n"
    "sys.meta_path.insert(0, Tracer())\n"
    "import cachekit\n"
    "cache = cachekit.Cache(driver='memory')\n"
    "cache.set('k', {'a': 1}); cache.get('k'); cache.stats()\n"
    "print(json.dumps({'loaded': 'asyncio' in sys.modules, 'wrapt': 'wrapt' in sys.modules,\n"
    "                  'importers': sorted({p.rsplit('/cachekit/', 1)[1] for p in importers})}))\n"
)


def test_only_cache_py_imports_asyncio_for_a_plain_cache() -> None:
    # The decorators (and wrapt, which imports asyncio itself) load on first use of cached/invalidates.
    found = json.loads(run_python(ASYNCIO_TRACER))
    assert found["wrapt"] is False
    assert set(found["importers"]) <= {"cache.py"}, found


def test_import_cachekit_imports_no_asyncio() -> None:
    assert json.loads(run_python(ASYNCIO_TRACER))["loaded"] is False


def test_the_lazy_names_load_on_first_use_in_a_fresh_process() -> None:
    code = ("import json, sys, cachekit\n"
            "before = 'cachekit.decorators' in sys.modules\n"
            "from cachekit import cached, CachePlugin\n"
            "print(json.dumps([before, cached.__module__, CachePlugin.__module__]))")
    assert json.loads(run_python(code)) == [False, "cachekit.decorators", "cachekit.plugin"]


def test_help_lists_every_public_name() -> None:
    import pydoc

    text = pydoc.render_doc(cachekit, renderer=pydoc.plaintext)
    assert "class CachePlugin" in text
    for name in ("cached(", "invalidates(", "class Cache(", "register_key_resolver("):
        assert name in text, name


BLOCK_BOTO = (
    "import sys\n"
    "class Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('boto3', 'botocore'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "        return None\n"
    "sys.meta_path.insert(0, Block())\n"
)


def test_s3db_without_the_s3_extra_names_the_pip_install() -> None:
    code = BLOCK_BOTO + "from cachekit.s3db import Database\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: cachekit.s3db needs boto3 and botocore"), last
    assert "pip install 'cachekit-orm[s3]'" in last


def test_a_plain_cache_works_without_the_s3_extra() -> None:
    code = BLOCK_BOTO + "import cachekit\nc = cachekit.Cache(driver='memory')\nc.set('k', 1)\nprint(c.get('k'))\n"
    assert run_python(code) == "1"


def test_the_wheel_declares_the_mit_license_file() -> None:
    # Built and checked by hand: cachekit_orm-*.dist-info/licenses/LICENSE and "License-File: LICENSE".
    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert project["project"]["license-files"] == ["LICENSE"]
    assert any(r.startswith("setuptools>=77") for r in project["build-system"]["requires"])  # PEP 639 support
    assert (root / "LICENSE").read_text().startswith("MIT License")
