"""Section ``drivers`` (issue 3): hit, miss and set through cachekit against the raw library, same run.

Each driver's rows are measured in groups (hit, miss, set, get_many); a group's rows alternate batch by
batch, so the cachekit row and its raw reference see the same moments of a noisy machine. The raw rows store
the same record as plain msgpack bytes and decode them on read: the job cachekit does, minus cachekit.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._core import RECORD, Case, Section, Settings, make_row, measure, per_op_timer
from ._services import Services

__all__ = ["run_drivers"]

_S3_BUCKET = "cachekit-bench"
_MANY = 100


@dataclass
class _Group:
    """Rows measured together; ``rows`` are (case id, reference id, target, extra ratio ids)."""

    cases: list[Case] = field(default_factory=list)
    rows: list[tuple[str, str, float | None, Sequence[str]]] = field(default_factory=list)

    def add(self, case_id: str, label: str, op: Callable[[], object], ops: int, *, per: int = 1) -> None:
        self.cases.append(Case(case_id, label, per_op_timer(op), ops, per=per))

    def report(self, case_id: str, reference: str, target: float | None = None, also: Sequence[str] = ()) -> None:
        self.rows.append((case_id, reference, target, also))

    def run(self, section: Section, rounds: int) -> None:
        found = measure(self.cases, rounds)
        for case_id, reference, target, also in self.rows:
            section.rows.append(make_row(found, case_id, reference, also=also, target=target))


def _decorated(namespace: Any) -> Any:
    """An instance whose ``get`` is a ``@cached`` method on ``namespace``, already filled for ``"u1"``."""
    from cachekit import cached

    class Repo:
        name = "users"
        cache = namespace

        @cached(action="get")
        def get(self, id: str) -> dict[str, Any]:
            return dict(RECORD)

    repo = Repo()
    repo.get("u1")
    return repo


@dataclass(frozen=True)
class _Extra:
    """A further row in a driver's hit group, with the row it is compared with and its target."""

    id: str
    label: str
    op: Callable[[], object]
    reference: str
    target: float | None = None


_Raw = dict[str, tuple[str, Callable[[], object]]]


def _hit_miss_set(
    section: Section, name: str, cache: Any, raw: _Raw, *, ops: int, set_ops: int, rounds: int,
    hit_target: float | None, extra_hits: Sequence[_Extra] = (),
) -> None:
    """The three groups every driver has: hit (plus the decorator hit and ``extra_hits``), miss, set.

    :param raw: ``{"hit": (label, op), "miss": ..., "set": ...}``, the raw library doing the same job.
    """
    cache.set("hit", RECORD)
    repo = _decorated(cache)
    hits = _Group()
    hits.add(f"{name}_hit_raw", *raw["hit"], ops)
    hits.add(f"{name}_hit_cachekit", f"cachekit {name}: cache.get hit", lambda: cache.get("hit"), ops)
    hits.add(f"{name}_decorator_hit", f"cachekit {name}: @cached method hit", lambda: repo.get("u1"), ops)
    for extra in extra_hits:
        hits.add(extra.id, extra.label, extra.op, ops)
    also = sorted({extra.reference for extra in extra_hits} - {f"{name}_hit_raw"})
    hits.report(f"{name}_hit_raw", f"{name}_hit_raw")
    hits.report(f"{name}_hit_cachekit", f"{name}_hit_raw", hit_target, also)
    hits.report(f"{name}_decorator_hit", f"{name}_hit_raw")
    for extra in extra_hits:
        hits.report(extra.id, extra.reference, extra.target)
    hits.run(section, rounds)
    misses = _Group()
    misses.add(f"{name}_miss_raw", *raw["miss"], ops)
    misses.add(f"{name}_miss_cachekit", f"cachekit {name}: cache.get miss", lambda: cache.get("absent"), ops)
    misses.report(f"{name}_miss_raw", f"{name}_miss_raw")
    misses.report(f"{name}_miss_cachekit", f"{name}_miss_raw")
    misses.run(section, rounds)
    sets = _Group()
    sets.add(f"{name}_set_raw", *raw["set"], set_ops)
    sets.add(f"{name}_set_cachekit", f"cachekit {name}: cache.set", lambda: cache.set("set", RECORD), set_ops)
    sets.report(f"{name}_set_raw", f"{name}_set_raw")
    sets.report(f"{name}_set_cachekit", f"{name}_set_raw")
    sets.run(section, rounds)


# -- filesystem -----------------------------------------------------------------------------------------------


def _filesystem(section: Section, settings: Settings, root: Path) -> None:
    try:
        import diskcache
        import msgpack
    except ImportError:
        section.skipped.append("filesystem: diskcache is not installed (pip install 'cachekit-orm[bench]')")
        return
    from cachekit import Cache

    blob = msgpack.packb(RECORD)
    with contextlib.ExitStack() as stack:
        ck = stack.enter_context(Cache("filesystem", namespace="bench", config={"directory": root / "ck-lru"}))
        fifo = stack.enter_context(
            Cache("filesystem", namespace="bench", config={"directory": root / "ck-fifo", "eviction_policy": "fifo"})
        )
        raw_lru = stack.enter_context(diskcache.Cache(str(root / "raw-lru"), eviction_policy="least-recently-used"))
        raw = stack.enter_context(diskcache.Cache(str(root / "raw-default")))
        for store in (raw_lru, raw):
            store.set("hit", blob)
        fifo.set("hit", RECORD)
        # diskcache's own default policy never writes on a hit; cachekit's "fifo" maps onto it, so that pair
        # compares like with like, as the lru pair does for cachekit's default.
        extra = [
            _Extra("filesystem_hit_raw_default", "diskcache default policy: get + msgpack decode",
                   lambda: msgpack.unpackb(raw.get("hit")), "filesystem_hit_raw_default"),
            _Extra("filesystem_hit_cachekit_fifo", "cachekit filesystem (fifo): cache.get hit",
                   lambda: fifo.get("hit"), "filesystem_hit_raw_default", 1.3),
        ]
        _hit_miss_set(
            section, "filesystem", ck,
            {
                "hit": ("diskcache lru: get + msgpack decode", lambda: msgpack.unpackb(raw_lru.get("hit"))),
                "miss": ("diskcache lru: get (absent key)", lambda: raw_lru.get("absent")),
                "set": ("diskcache lru: msgpack encode + set", lambda: raw_lru.set("set", msgpack.packb(RECORD))),
            },
            ops=settings.ops_disk, set_ops=settings.ops_disk_set, rounds=settings.rounds_io, hit_target=1.3,
            extra_hits=extra,
        )
    section.notes.append(
        "filesystem: cachekit's default eviction 'lru' is diskcache's least-recently-used, which writes the access "
        "time on every hit; 'diskcache lru' rows use that policy too. The fifo pair compares cachekit's 'fifo' "
        "with diskcache's default (least-recently-stored): no write on a hit."
    )


# -- redis ----------------------------------------------------------------------------------------------------


def _redis(section: Section, settings: Settings, services: Services) -> None:
    client = services.redis_or_reason()
    if isinstance(client, str):
        section.skipped.append(f"redis: {client}")
        return
    import msgpack

    from cachekit import Cache

    raw_prefix = services.redis_prefix + "raw:"
    blob = msgpack.packb(RECORD)
    client.set(raw_prefix + "hit", blob, px=300_000)
    config = {"url": services.redis_url, "key_prefix": services.redis_prefix + "ck:"}
    with Cache("redis", namespace="bench", config=config) as cache:
        _hit_miss_set(
            section, "redis", cache,
            {
                "hit": ("redis-py: GET + msgpack decode", lambda: msgpack.unpackb(client.get(raw_prefix + "hit"))),
                "miss": ("redis-py: GET (absent key)", lambda: client.get(raw_prefix + "absent")),
                "set": ("redis-py: msgpack encode + SET PX",
                        lambda: client.set(raw_prefix + "set", msgpack.packb(RECORD), px=300_000)),
            },
            ops=settings.ops_redis, set_ops=settings.ops_redis, rounds=settings.rounds_io, hit_target=1.15,
        )
        names = [f"many{i:03d}" for i in range(_MANY)]
        raw_keys = [raw_prefix + name for name in names]
        client.mset(dict.fromkeys(raw_keys, blob))
        cache.set_many(dict.fromkeys(names, RECORD))
        unpack = msgpack.unpackb
        group = _Group()
        group.add("redis_get_many_raw", f"redis-py: MGET {_MANY} keys + decode [per key]",
                  lambda: [unpack(b) for b in client.mget(raw_keys)], settings.ops_redis_many, per=_MANY)
        group.add("redis_get_many_cachekit", f"cachekit redis: get_many({_MANY} keys) [per key]",
                  lambda: cache.get_many(names), settings.ops_redis_many, per=_MANY)
        group.report("redis_get_many_raw", "redis_get_many_raw")
        group.report("redis_get_many_cachekit", "redis_get_many_raw", 1.3)
        group.run(section, settings.rounds_io)
        section.notes.append(f"redis: {services.redis_url}, keys under {services.redis_prefix!r} (deleted at exit)")


# -- s3 -------------------------------------------------------------------------------------------------------


def _s3(section: Section, settings: Settings, services: Services) -> None:
    raw_client, ck_client = services.s3_client(), services.s3_client()
    if isinstance(raw_client, str):
        section.skipped.append(f"s3: {raw_client}")
        return
    import msgpack

    from cachekit import Cache

    raw_client.create_bucket(Bucket=_S3_BUCKET)
    raw_client.put_object(Bucket=_S3_BUCKET, Key="raw/hit", Body=msgpack.packb(RECORD))
    missing = raw_client.exceptions.NoSuchKey

    def raw_hit() -> object:
        body = raw_client.get_object(Bucket=_S3_BUCKET, Key="raw/hit")["Body"]
        try:
            return msgpack.unpackb(body.read())
        finally:
            body.close()

    def raw_miss() -> object:
        try:
            return raw_client.get_object(Bucket=_S3_BUCKET, Key="raw/absent")
        except missing:
            return None

    config = {"bucket": _S3_BUCKET, "client": ck_client, "key_prefix": "cache/"}
    with Cache("s3", namespace="bench", config=config) as cache:
        _hit_miss_set(
            section, "s3", cache,
            {
                "hit": ("boto3: get_object + read + msgpack decode", raw_hit),
                "miss": ("boto3: get_object (NoSuchKey caught)", raw_miss),
                "set": ("boto3: msgpack encode + put_object",
                        lambda: raw_client.put_object(Bucket=_S3_BUCKET, Key="raw/set", Body=msgpack.packb(RECORD))),
            },
            ops=settings.ops_s3, set_ops=settings.ops_s3, rounds=settings.rounds_s3, hit_target=None,
        )
    section.notes.append("s3: a moto server started for this run on loopback (a floor, not real S3 latency)")


def run_drivers(settings: Settings, services: Services) -> Section:
    """Filesystem, Redis and S3 rows; a driver whose library or server is missing is skipped with a note."""
    section = Section("drivers", "Drivers: cachekit (Cache + codec) against the raw library, same run")
    with tempfile.TemporaryDirectory(prefix="cachekit-bench-") as directory:
        _filesystem(section, settings, Path(directory))
    _redis(section, settings, services)
    _s3(section, settings, services)
    section.notes.append(
        "Per-operation timing (GC off); p50/p90/p99 pool every operation of every round. Raw rows store plain "
        "msgpack bytes; cachekit adds its 20-byte envelope (TTL, format) and its fail-open handling."
    )
    return section
