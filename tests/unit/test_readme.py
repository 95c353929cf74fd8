"""Every Python snippet of every README runs as pasted, in a fresh interpreter and an empty directory.

The snippets are README.md's, recipes/README.md's, recipes/*/README.md's and the docs site's (docs/**/*.md)
```python blocks (also indented ones, inside list items), plus the ``CachePlugin`` docstring's example. They get
the services a new user is told about: moto's S3 server on 127.0.0.1:5055 (the port the snippets name), Redis on
127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (database ``test``) when a snippet names them. A block that is
deliberately not runnable says so, in its fence (```` ```python no-run ````) or in an HTML comment on the line
above (``<!-- no-run -->``).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import LOOPBACK, MotoServer, unavailable

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: The API reference site's pages (mkdocs, docs/): their snippets run too (issue 20).
DOCS_PAGES = sorted((ROOT / "docs").glob("**/*.md"))
READMES = [README, ROOT / "recipes" / "README.md", *sorted((ROOT / "recipes").glob("*/README.md")), *DOCS_PAGES]
SNIPPET_S3_PORT = 5055
REDIS_PORT, POSTGRES_PORT = 6379, 5432
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class Snippet:
    source: str  # "README.md:42"
    code: str

    @property
    def readme(self) -> str:
        return self.source.rsplit(":", 1)[0]


def python_blocks(path: Path, root: Path = ROOT) -> list[Snippet]:
    """The runnable ```python blocks of a Markdown file, dedented; ``no-run`` ones left out."""
    text = path.read_text(encoding="utf-8")
    name = path.relative_to(root).as_posix()
    found = []
    for match in _FENCE.finditer(text):
        words = match["info"].split()
        if not words or words[0] not in ("python", "py"):
            continue
        before = text[: match.start()].rstrip().splitlines()[-1:] or [""]
        if "no-run" in words[1:] or "<!-- no-run" in before[0]:
            continue
        line = text.count("\n", 0, match.start()) + 1
        found.append(Snippet(f"{name}:{line}", textwrap.dedent(match["body"])))
    return found


def docstring_example(obj: object) -> str:
    """The ``E.g.::`` block of an object's docstring, dedented."""
    doc = textwrap.dedent("    " + (obj.__doc__ or "").lstrip())
    block = doc.split("E.g.::\n", 1)[1].split("\n:param", 1)[0]
    return textwrap.dedent(block)


def _snippets() -> list[pytest.param]:
    params = []
    for path in READMES:
        for snippet in python_blocks(path):
            params.append(pytest.param(snippet, id=snippet.source))
    return params


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def _snippet_moto() -> Iterator[str]:
    """moto's S3 server on the port the READMEs name; a clear failure when something else holds that port."""
    if _port_open(SNIPPET_S3_PORT):
        pytest.fail(f"port {SNIPPET_S3_PORT} on {LOOPBACK} is taken, but the README snippets use it for their S3 "
                    f"endpoint: stop what listens there (e.g. `ss -ltnp 'sport = :{SNIPPET_S3_PORT}'`)")
    try:
        import moto.server  # noqa: F401
    except ImportError:
        unavailable("moto[server] is not installed (pip install 'cachekit-orm[test]')")
    server = MotoServer(port=SNIPPET_S3_PORT).start()
    try:
        yield server.endpoint_url
    finally:
        server.stop()


@pytest.fixture
def snippet_s3(_snippet_moto: str) -> str:
    """The snippets' S3 endpoint, emptied: each snippet starts from a fresh S3, as a new user's would."""
    request = urllib.request.Request(f"{_snippet_moto}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    return _snippet_moto


def _require_services(code: str) -> None:
    if f":{REDIS_PORT}" in code and not _port_open(REDIS_PORT):
        unavailable(f"the snippet needs Redis on {LOOPBACK}:{REDIS_PORT}")
    if (f":{POSTGRES_PORT}" in code or "postgresql" in code) and not _port_open(POSTGRES_PORT):
        unavailable(f"the snippet needs PostgreSQL on {LOOPBACK}:{POSTGRES_PORT} (database 'test')")


def run_snippet(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as a new user would paste it: a fresh interpreter, an empty working directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CACHEKIT_"))}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's cachekit (and recipes), not the one installed in the venv
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_every_readme_has_its_blocks_found() -> None:
    # README.md has the repository and the plugin snippets; a broken extractor would find none and pass.
    assert len(python_blocks(README)) >= 2
    assert python_blocks(README)[0].code.startswith("from cachekit import Cache, cached, invalidates")


def test_the_docs_site_pages_have_their_blocks_found() -> None:
    pages = {path.relative_to(ROOT).as_posix(): python_blocks(path) for path in DOCS_PAGES}
    assert len(pages["docs/index.md"]) >= 1
    assert any("publish_stats" in snippet.code for snippet in pages["docs/operating.md"])


def test_no_run_blocks_are_left_out(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```python\nrun()\n```\n\n```python no-run\nskipped()\n```\n\n<!-- no-run -->\n"
                    "```python\nalso_skipped()\n```\n\n1. step\n\n   ```python\n   indented()\n   ```\n")
    snippets = [s.code for s in python_blocks(page, root=tmp_path)]
    assert snippets == ["run()\n", "indented()\n"]


@pytest.mark.s3
@pytest.mark.parametrize("snippet", _snippets())
def test_snippet_runs_as_pasted(snippet: Snippet, snippet_s3: str, tmp_path: Path) -> None:
    _require_services(snippet.code)
    result = run_snippet(snippet.code, tmp_path)
    assert result.returncode == 0, f"{snippet.source} failed:\n{result.stderr[-3000:]}"


def test_repository_snippet_prints_its_key(tmp_path: Path) -> None:
    snippet = python_blocks(README)[0]
    result = run_snippet(snippet.code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cachekit/resource=users/action=get/" in result.stdout


@pytest.mark.s3
def test_the_plugin_docstring_example_runs(snippet_s3: str, tmp_path: Path) -> None:
    from cachekit.plugin import CachePlugin

    code = docstring_example(CachePlugin)
    assert "create_bucket=True" in code
    assert "insert(" in code
    result = run_snippet(code, tmp_path)
    assert result.returncode == 0, result.stderr


def test_two_commands_are_the_ones_ci_runs() -> None:
    text = README.read_text()
    assert "bash .ci/test" in text
    assert "bash .ci/test" in (README.parent / ".ci" / "run").read_text()
    assert ".venv/bin/cachekit demo" in text


def test_the_readmes_command_lines_parse() -> None:
    # The `cachekit ...` lines of the README's shell blocks use options that exist (bench parses its own).
    import shlex

    from cachekit._tools.cli import build_parser

    lines = [line.strip() for line in README.read_text().splitlines() if line.strip().startswith("cachekit ")]
    commands = [shlex.split(line) for line in lines if not line.startswith(("cachekit bench", "cachekit demo ["))]
    assert len(commands) >= 3
    for words in commands:
        build_parser().parse_args(words[1:])
    assert any("--database" in words and "--resource" in words for words in commands)
