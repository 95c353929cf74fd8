"""The API reference (issue 20): ``mkdocs build --strict`` (warnings are errors) renders every public name of the
package from its docstrings. The pages' Python snippets run as tests in ``test_readme.py``.

Built into a temporary directory by this test, so the README's test command (``bash .ci/test``) checks it: the
``docs`` extra is part of the ``test`` extra. Locally without mkdocs the build is skipped; in CI it fails.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import cachekit
from tests.servers import unavailable

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: Modules that are not API: the command line's own modules (cachekit.cli is documented as a command, not code).
NOT_API = re.compile(r"^cachekit\.(_tools|cli|cli_\w+|demo|workload|bench)(\.|$)")


def documented_modules() -> list[str]:
    """The modules the reference pages render whole (``::: module`` lines; others name one object)."""
    found = []
    for page in sorted((DOCS / "reference").glob("*.md")):
        for name in re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M):
            if _is_module(name):
                found.append(name)
    return found


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def public_modules() -> list[str]:
    """Every module of the package whose dotted name has no part starting with ``_``."""
    names = ["cachekit"]
    for info in pkgutil.walk_packages(cachekit.__path__, "cachekit."):
        if not any(part.startswith("_") for part in info.name.split(".")) and not NOT_API.match(info.name):
            names.append(info.name)
    return sorted(names)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        import mkdocstrings  # noqa: F401
    except ImportError:
        unavailable("mkdocs and mkdocstrings are not installed (pip install 'cachekit-orm[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / ".ci" / "mkdocs.yml")]
    result = subprocess.run([*command, "--site-dir", str(out)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "WARNING" not in log, log[-4000:]
    return out


def inventory(site: Path) -> set[str]:
    """The names the site documents (mkdocstrings' ``objects.inv``: four header lines, then zlib)."""
    raw = (site / "objects.inv").read_bytes()
    body = zlib.decompress(raw.split(b"\n", 4)[4]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines()}


def test_the_reference_builds_with_warnings_as_errors(site: Path) -> None:
    assert (site / "reference" / "cachekit" / "index.html").is_file()
    page = (site / "reference" / "operations" / "index.html").read_text(encoding="utf-8")
    assert "read_fleet" in page
    assert "Every live record under" in page  # rendered from the docstring
    assert "Where records live in the backend" in page  # a constant's #: comment (docs/griffe_rest.py)
    for html in (site / "reference").glob("*/index.html"):
        assert ":class:`" not in html.read_text(encoding="utf-8"), html  # reST roles become code spans


def test_every_public_module_has_a_reference_page() -> None:
    documented = set(documented_modules())
    missing = [name for name in public_modules() if name not in documented and name != "cachekit"]
    assert not missing, f"public modules without a '::: name' line under docs/reference/: {missing}"


def test_every_public_name_is_in_the_reference(site: Path) -> None:
    names = inventory(site)
    missing = []
    for module_name in documented_modules():
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            if f"{module_name}.{name}" not in names:
                missing.append(f"{module_name}.{name}")
    # The package's own names are re-exports: each is rendered where it is defined, or under cachekit itself.
    missing += [f"cachekit.{name}" for name in cachekit.__all__
                if f"cachekit.{name}" not in names and not any(each.endswith(f".{name}") for each in names)]
    assert not missing, missing


def test_every_public_class_and_function_has_a_docstring() -> None:
    missing = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        if not (module.__doc__ or "").strip():
            missing.append(module_name)
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if (inspect.isclass(value) or inspect.isfunction(value)) and not (value.__doc__ or "").strip():
                missing.append(f"{module_name}.{name}")
    assert not missing, missing


def test_every_public_constant_has_a_doc_comment() -> None:
    """Module-level names of ``__all__`` that are assignments carry a ``#:`` comment line just above them (the
    reference shows it as their docstring, docs/griffe_rest.py)."""
    missing = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        source = Path(str(module.__file__)).read_text(encoding="utf-8").splitlines()
        assigned: dict[str, int] = {}
        for node in ast.parse("\n".join(source)).body:
            if isinstance(node, ast.Assign):
                assigned.update({t.id: node.lineno for t in node.targets if isinstance(t, ast.Name)})
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                assigned[node.target.id] = node.lineno
        for name in getattr(module, "__all__", ()):
            line = assigned.get(name)
            if line is not None and not source[line - 2].strip().startswith("#:"):
                missing.append(f"{module_name}.{name}")
    assert not missing, missing
