"""Section ``django`` (issue 16): ``cache.get`` of a 10-field dict through ``cachekit.django.CachekitCache``.

Against Django's built-in ``RedisCache`` and django-redis (when installed), on the same Redis in one interleaved
group: our backend on Redis (target <= 1.1x the built-in's time), and with a memory tier in front (a hit at
least 10x faster than the built-in: ratio <= 0.1). A second group awaits ``aget``: ours goes through
``redis.asyncio``, the built-in's runs the sync ``get`` in a thread (``sync_to_async``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._async import async_per_op_timer
from ._core import RECORD, Case, Section, Settings, make_row, measure, per_op_timer
from ._services import Services

__all__ = ["run_django"]

_TARGET_REDIS = 1.1
_TARGET_TIERED = 0.1


def _configure() -> None:
    from django.conf import settings

    if not settings.configured:
        settings.configure(SECRET_KEY="cachekit-bench-django-0123456789", CACHES={})


def _backends(url: str, prefix: str) -> dict[str, Any]:
    from django.core.cache.backends.redis import RedisCache

    from cachekit.django import CachekitCache

    found: dict[str, Any] = {
        "django_builtin": RedisCache(url, {"KEY_PREFIX": prefix + "djb"}),
        "cachekit": CachekitCache(url, {"OPTIONS": {"namespace": "bench-django",
                                                    "config": {"key_prefix": prefix + "djc:"}}}),
        "cachekit_tiered": CachekitCache(url, {"OPTIONS": {
            "namespace": "bench-django-tiered",
            "tiers": [{"driver": "memory", "ttl": 300}, {"driver": "redis", "config": {"key_prefix": prefix + "djt:"}}],
        }}),
    }
    try:
        from django_redis.cache import RedisCache as DjangoRedisCache
    except ImportError:
        pass
    else:
        found["django_redis"] = DjangoRedisCache(url, {"KEY_PREFIX": prefix + "djr", "OPTIONS": {}})
    return found


def _getter(backend: Any) -> Any:
    return lambda: backend.get("record")


def run_django(settings: Settings, services: Services) -> Section:
    """The sync and the async group; skipped with a note without Redis or Django."""
    section = Section("django", "Django cache.get of a 10-field dict: CachekitCache against RedisCache, django-redis")
    client = services.redis_or_reason()
    if isinstance(client, str):
        section.skipped.append(f"django: {client}")
        return section
    try:
        _configure()
        backends = _backends(services.redis_url, services.redis_prefix)
    except ImportError as exc:
        section.skipped.append(f"django: {exc} (pip install 'cachekit-orm[bench]')")
        return section
    if "django_redis" not in backends:
        section.skipped.append("django-redis: not installed")
    labels = {
        "django_builtin": "Django RedisCache.get",
        "django_redis": "django-redis RedisCache.get",
        "cachekit": "CachekitCache.get on Redis",
        "cachekit_tiered": "CachekitCache.get, memory tier in front of Redis",
    }
    for backend in backends.values():
        backend.set("record", dict(RECORD), 300)
    cases = [Case(f"django_{name}", labels[name], per_op_timer(_getter(backend)), settings.ops_redis)
             for name, backend in backends.items()]
    found = measure(cases, settings.rounds_io)
    others = [f"django_{name}" for name in ("django_redis",) if name in backends]
    section.rows.append(make_row(found, "django_django_builtin", "django_django_builtin"))
    if others:
        section.rows.append(make_row(found, "django_django_redis", "django_django_builtin"))
    section.rows.append(make_row(found, "django_cachekit", "django_django_builtin", also=others, target=_TARGET_REDIS))
    section.rows.append(make_row(found, "django_cachekit_tiered", "django_django_builtin", also=others,
                                 target=_TARGET_TIERED))

    loop = asyncio.new_event_loop()
    try:
        async_cases = [
            Case("django_aget_builtin", "Django RedisCache.aget (sync get in a thread)",
                 async_per_op_timer(loop, lambda: backends["django_builtin"].aget("record")), settings.ops_redis),
            Case("django_aget_cachekit", "CachekitCache.aget on Redis (redis.asyncio)",
                 async_per_op_timer(loop, lambda: backends["cachekit"].aget("record")), settings.ops_redis),
        ]
        found = measure(async_cases, settings.rounds_io)
        section.rows.append(make_row(found, "django_aget_builtin", "django_aget_builtin"))
        section.rows.append(make_row(found, "django_aget_cachekit", "django_aget_builtin"))
    finally:
        loop.run_until_complete(backends["cachekit"].cache.driver.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    for backend in backends.values():
        backend.close()
    section.notes.append(
        "Per-operation timing (GC off), one interleaved group per table; every backend GETs the same record from "
        "the same Redis. The tiered row's target is a ratio of 0.1: a hit at least 10x faster than RedisCache."
    )
    return section
