"""Choose cachekit's driver in ``settings.py``: memory in development, Redis in production.

Problem: on a laptop you want a cache with nothing to install; in production, with several worker processes,
an in-process cache is wrong: a write handled by one worker invalidates only that worker's memory, and the
others keep serving the old row until its TTL runs out. The driver has to change with the environment,
without code changes.

Copy :func:`cachekit_settings` into your ``settings.py`` (or import it) and end with::

    CACHEKIT = cachekit_settings()

``CACHEKIT`` holds the keyword arguments of :class:`cachekit.Cache`; ``repository.get_cache()`` builds the
cache from it on first use. Set ``CACHEKIT_REDIS_URL`` in production, e.g.
``CACHEKIT_REDIS_URL=redis://cache.internal:6379/0``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["CACHEKIT", "cachekit_settings"]


def cachekit_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``CACHEKIT`` setting for this environment.

    E.g.::

        cachekit_settings({})                                             # memory
        cachekit_settings({"CACHEKIT_REDIS_URL": "redis://127.0.0.1:6379/0"})  # Redis

    :param environ: where to read the variables from (default ``os.environ``):
        ``CACHEKIT_REDIS_URL`` (Redis when set), ``CACHEKIT_KEY_PREFIX`` (default ``"myapp:"``: keeps this
        application's keys apart from others on a shared Redis), ``CACHEKIT_TTL`` (seconds).
    """
    env = os.environ if environ is None else environ
    redis_url = env.get("CACHEKIT_REDIS_URL", "").strip()
    if redis_url:
        return {
            "driver": "redis",
            "namespace": "myapp",
            "ttl": float(env.get("CACHEKIT_TTL", "300")),
            "config": {"url": redis_url, "key_prefix": env.get("CACHEKIT_KEY_PREFIX", "myapp:")},
        }
    # Development: a bounded in-process cache, and a short TTL so a row edited outside Django
    # (a SQL console, another service) does not look stale for long.
    return {
        "driver": "memory",
        "namespace": "myapp",
        "ttl": float(env.get("CACHEKIT_TTL", "60")),
        "config": {"max_size": 10_000},
    }


CACHEKIT = cachekit_settings()
