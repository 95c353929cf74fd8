"""Fetch a framework's source distribution (with its own tests) once per machine.

The frameworks' test suites judge cachekit's doors (Django's ``tests/cache``, Flask-Caching's ``tests``). They are
fetched at test set-up with ``pip download --no-binary :all: NAME==VERSION`` (the version installed in this
environment, so the tests match the code they exercise), unpacked under a cache directory
(``$CACHEKIT_SDIST_CACHE``, default ``~/.cache/cachekit/sdists``) and reused by later runs. Nothing is vendored.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

__all__ = ["installed_version", "sdist_tree"]


def installed_version(distribution: str) -> str:
    """The version of ``distribution`` installed in this environment."""
    return metadata.version(distribution)


def _cache_root() -> Path:
    root = os.environ.get("CACHEKIT_SDIST_CACHE") or os.path.join(Path.home(), ".cache", "cachekit", "sdists")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sdist_tree(distribution: str, version: str | None = None) -> Path:
    """Return the unpacked source tree of ``distribution==version`` (default: the installed version).

    Downloads the sdist with pip on first use; concurrent callers (two test runs) wait on a lock file.
    Raises ``RuntimeError`` with pip's output when the download fails.
    """
    version = version or installed_version(distribution)
    root = _cache_root()
    target = root / f"{distribution.lower()}-{version}"
    if (target / ".complete").exists():
        return target
    with _locked(root / f".{distribution.lower()}-{version}.lock"):
        if (target / ".complete").exists():
            return target
        with tempfile.TemporaryDirectory(dir=root) as work:
            result = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                 "--no-deps", "--no-binary", ":all:", "-d", work, f"{distribution}=={version}"],
                capture_output=True, text=True, timeout=600, check=False,
            )
            archives = sorted(Path(work).glob("*.tar.gz"))
            if result.returncode != 0 or not archives:
                raise RuntimeError(
                    f"could not download the sdist of {distribution}=={version}: {result.stdout}{result.stderr}"
                )
            unpacked = Path(work) / "unpacked"
            with tarfile.open(archives[0]) as archive:
                archive.extractall(unpacked, filter="data")
            (top,) = list(unpacked.iterdir())
            if target.exists():
                shutil.rmtree(target)
            shutil.move(str(top), target)
            (target / ".complete").write_text(version)
    return target
