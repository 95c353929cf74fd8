"""Never stale after a write returned: 8 threads in one process, and a writer and a reader in two processes.

No faults are injected. Values carry versions; a read is stale when it returns a version older than a write
that completed before the read began (see ``harness.py``). Runs are bounded by their operations (time is only a
cap): the outage tests (``test_outage_recovery.py``) soak Redis and memory -> Redis longer, with faults.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cachekit import Cache

from .harness import run_threads, run_two_processes

OPERATIONS = int(os.environ.get("CACHEKIT_STALE_OPERATIONS", "16000"))
PROCESS_WRITES = int(os.environ.get("CACHEKIT_STALE_PROCESS_WRITES", "400"))
CAP = 60.0  # seconds: a bound for a very slow machine, never the measure


def _memory(**_: Any) -> dict[str, Any]:
    return {"driver": "memory", "namespace": "stale", "config": {"max_size": 0}}


def _filesystem(tmp_path: Path, **_: Any) -> dict[str, Any]:
    return {"driver": "filesystem", "namespace": "stale", "config": {"directory": str(tmp_path / "fs")}}


def _redis(redis_url: str, redis_prefix: str, **_: Any) -> dict[str, Any]:
    return {"driver": "redis", "namespace": "stale", "config": {"url": redis_url, "key_prefix": redis_prefix}}


def _tiers(redis_url: str, redis_prefix: str, **_: Any) -> dict[str, Any]:
    return {
        "namespace": "stale",
        "drivers": [
            {"driver": "memory", "ttl": 5, "config": {"max_size": 0}},
            {"driver": "redis", "ttl": 60, "config": {"url": redis_url, "key_prefix": redis_prefix}},
        ],
    }


def _signed(make: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """The same spec with a signing key: sealed generations, scopes without a record read as their group's."""

    def spec(**options: Any) -> dict[str, Any]:
        made = make(**options)
        made["config"] = {**made["config"], "signing_key": b"stale-reads-signing-key-012345"}
        return made

    return spec


SPECS: dict[str, Callable[..., dict[str, Any]]] = {
    "memory": _memory,
    "filesystem": _filesystem,
    "redis": _redis,
    "memory->redis": _tiers,
    "filesystem-signed": _signed(_filesystem),
    "redis-signed": _signed(_redis),
}


def _spec(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if name in ("redis", "memory->redis", "redis-signed"):
        return SPECS[name](
            redis_url=request.getfixturevalue("redis_url"), redis_prefix=request.getfixturevalue("redis_prefix")
        )
    return SPECS[name](tmp_path=tmp_path)


@pytest.mark.parametrize("name", list(SPECS))
def test_eight_threads_never_read_stale(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cache = Cache(**_spec(name, request, tmp_path))
    try:
        outcome = run_threads(cache, seconds=CAP, max_operations=OPERATIONS, list_ratio=0.1, write_delay=0.001)
    finally:
        cache.close()
    assert outcome.writes > 100, outcome
    assert outcome.reads > 1000, outcome
    assert outcome.hits > outcome.reads * 0.3, "the cache must be in play for the test to mean anything"
    assert outcome.stale == 0, f"{outcome.stale} stale reads of {outcome.reads} (windows {outcome.windows[:10]})"


@pytest.mark.parametrize("name", ["redis", "filesystem", "memory->redis", "redis-signed", "filesystem-signed"])
def test_a_reader_process_sees_a_writer_process_within_100_ms(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    writer, reader = run_two_processes(_spec(name, request, tmp_path), writes=PROCESS_WRITES, seconds=CAP)
    assert writer.writes == PROCESS_WRITES, writer
    assert reader.reads > 1000, reader
    assert reader.hits > reader.reads * 0.3, "the reader's cache must be in play"
    late = [w for w in reader.windows if w > 0.1]
    print(f"{name}: {reader.stale} stale of {reader.reads} reads, p99 stale window {reader.p99_window() * 1000:.1f} ms")
    assert late == [], f"{len(late)} reads stale more than 100 ms after the write returned: {sorted(late)[-5:]}"
