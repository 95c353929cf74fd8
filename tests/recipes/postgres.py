"""The machine's PostgreSQL for the recipe tests: its URL, a reachability check, and schemas of a test's own.

``CACHEKIT_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``; ``.ci/ensure-postgres``
starts one when absent). Locally a missing server skips the tests; in CI it fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.servers import unavailable

POSTGRES_URL = os.environ.get("CACHEKIT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_reachable() -> None:
    """Skip locally, fail in CI, when the PostgreSQL of ``CACHEKIT_TEST_POSTGRES_URL`` does not answer."""
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed (pip install 'cachekit-orm[postgres]')")
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as exc:
        unavailable(f"no PostgreSQL at {POSTGRES_URL} (bash .ci/ensure-postgres starts one): {exc}")


def sqlalchemy_url() -> str:
    """:data:`POSTGRES_URL` for SQLAlchemy with psycopg 3."""
    scheme, rest = POSTGRES_URL.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme in ("postgresql", "postgres") else POSTGRES_URL


@contextmanager
def own_schema() -> Iterator[tuple[str, dict[str, Any]]]:
    """A fresh schema, dropped afterwards: ``(name, connect_args)`` that put it first on the search path."""
    import psycopg

    postgres_reachable()
    name = f"cachekit_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name, {"options": f"-csearch_path={name}"}
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
