"""The ``redis_cluster_url`` fixture: a private 3-primary Redis Cluster for the whole test session.

The cluster is shared through a module-level reference count, so it starts once even when this fixture is both
registered in ``conftest.py`` and imported into a test module (pytest then holds two fixture definitions).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.servers import RedisCluster, unavailable

_cluster: RedisCluster | None = None
_users = 0


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """``redis+cluster://127.0.0.1:PORT`` of a running 3-primary cluster (skipped locally when impossible)."""
    global _cluster, _users
    try:
        import redis  # noqa: F401
    except ImportError:
        unavailable("redis-py is not installed (pip install 'cachekit-orm[redis]')")
    if _cluster is None:
        missing = [name for name in ("redis-server", "redis-cli") if shutil.which(name) is None]
        if missing:
            unavailable(f"{' and '.join(missing)} not on PATH; cannot start a Redis Cluster")
        try:
            _cluster = RedisCluster().start()
        except Exception as exc:
            unavailable(f"could not start a Redis Cluster: {exc}")
    assert _cluster is not None
    _users += 1
    try:
        yield _cluster.url
    finally:
        _users -= 1
        if _users == 0:
            _cluster.cleanup()
            _cluster = None
