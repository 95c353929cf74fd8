"""The filesystem generation store (``{directory}/~generations``) against another writer of the directory (issue 19).

The store is polled every 50 ms from the moment a filesystem Cache exists, so a record planted there is read
with no read by the app. Another writer (diskcache's default pickling ``Disk``, or plain SQL) plants a pickle
whose ``__reduce__`` creates a marker file, an expired file-reference row naming a file outside the directory,
a ``/dev/zero`` reference and an oversized blob: no code runs, no file outside is touched, nothing unbounded is
read, and a planted counter reads as a private generation (a miss), never a shared or older one.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest
from diskcache.core import MODE_BINARY, MODE_RAW

from cachekit import Cache, cached, invalidates
from cachekit.generations import store_for
from cachekit.generations.polled import FilesystemGenerations

DRIVERS = ["filesystem", "partition-filesystem"]


class _Users:
    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.version = 0
        self.calls = 0

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any]:
        self.calls += 1
        return {"id": id, "version": self.version}

    @invalidates(action="update")
    def update(self, id: str) -> None:
        self.version += 1


class _Marker:
    """Unpickling this creates a file: proof that code ran in the reader."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def _cache(directory: Path, driver: str) -> Cache:
    return Cache(driver=driver, namespace="hostile", config={"directory": str(directory)})


def _records(directory: Path) -> Path:
    return directory / "~generations"


def _keys(directory: Path) -> list[str]:
    with sqlite3.connect(_records(directory) / "cache.db") as con:
        keys = [key for (key,) in con.execute("SELECT key FROM Cache WHERE raw = 1")]
    con.close()
    return keys


def _plant(directory: Path, key: str, *, mode: int, filename: str | None, value: Any, expire: float | None) -> None:
    """Insert a row as another writer of the directory could (diskcache's own column layout)."""
    with sqlite3.connect(_records(directory) / "cache.db") as con:
        con.execute("DELETE FROM Cache WHERE key = ?", (key,))
        now = time.time()
        con.execute(
            "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size, mode,"
            " filename, value) VALUES (?, 1, ?, ?, ?, 0, NULL, 0, ?, ?, ?)",
            (key, now, expire, now, mode, filename, value),
        )
    con.close()


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def caches() -> Iterator[list[Cache]]:
    opened: list[Cache] = []
    yield opened
    for cache in opened:
        cache.close()


def test_a_planted_pickle_is_never_unpickled_by_the_poll_or_a_read(
    tmp_path: Path, driver: str, caches: list[Cache]
) -> None:
    directory, marker = tmp_path / "cache", tmp_path / "code-ran"
    first = _Users(_cache(directory, driver))
    caches.append(first.cache)
    assert first.get("u1") == {"id": "u1", "version": 0}
    with diskcache.Cache(str(_records(directory))) as intruder:  # the default Disk: pickles any object
        for key in [*_keys(directory), "hostile/~epoch", "hostile/~floor", "cachekit/~epoch"]:
            intruder.set(key, _Marker(marker))
    time.sleep(0.3)  # six polls of the epoch
    second = _Users(_cache(directory, driver))  # a fresh process's view: reads every scope's record
    caches.append(second.cache)
    assert second.get("u1") == {"id": "u1", "version": 0}
    assert second.calls == 1  # planted records read as private generations: a miss, not a shared entry
    assert first.get("u1") == {"id": "u1", "version": 0}
    time.sleep(0.1)
    assert not marker.exists(), "a planted pickle in ~generations was unpickled"
    assert store_for(second.cache.driver).refused_records >= 1  # type: ignore[attr-defined]


def test_an_expired_file_reference_row_never_deletes_a_file_outside(
    tmp_path: Path, driver: str, caches: list[Cache]
) -> None:
    directory, outside = tmp_path / "cache", tmp_path / "outside"
    outside.mkdir()
    victim = outside / "precious.txt"
    victim.write_text("not the cache's")
    repo = _Users(_cache(directory, driver))
    caches.append(repo.cache)
    repo.get("u1")
    for number, filename in enumerate([str(victim), "../../outside/precious.txt", "cache.db"]):
        _plant(directory, f"hostile/users/item/x{number}", mode=MODE_BINARY, filename=filename, value=None,
               expire=time.time() - 10)
    store = store_for(repo.cache.driver)
    assert isinstance(store, FilesystemGenerations)
    store._next_expire = 0.0  # the poll's expire() is due (it runs once a minute)
    store.poll()
    assert victim.read_text() == "not the cache's"
    assert (_records(directory) / "cache.db").is_file()
    assert not any(key.startswith("hostile/users/item/x") for key in _keys(directory))  # the rows were dropped
    repo.update("u1")
    assert repo.get("u1") == {"id": "u1", "version": 1}


def test_a_dev_zero_reference_is_never_read(tmp_path: Path, driver: str) -> None:
    """In a child under a 1 GiB address-space limit: reading /dev/zero would fail with MemoryError there."""
    script = f"""
import resource, sqlite3, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from cachekit import Cache
from cachekit.generations import store_for
cache = Cache(driver={driver!r}, namespace="hostile", config={{"directory": sys.argv[1]}})
cache.set("k", 1)
store = store_for(cache.driver)
store.read("hostile", ["users/agg"])
con = sqlite3.connect(sys.argv[1] + "/~generations/cache.db")
for key in ("hostile/~epoch", "hostile/users/agg"):
    con.execute("DELETE FROM Cache WHERE key = ?", (key,))
    con.execute("INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size,"
                " mode, filename, value) VALUES (?, 1, 0, NULL, 0, 0, NULL, 0, {MODE_BINARY}, '/dev/zero', NULL)",
                (key,))
con.commit(); con.close()
print("epoch", store._read_epoch("hostile"))
print("counter", store.read("hostile", ["users/agg"])[0] < 0)
time.sleep(0.2)  # the background poll reads it too
print("healthy", store.trusted("hostile"))
cache.close()
"""
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "cache")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:3] == ["epoch b'unparsable'", "counter True", "healthy True"]


def test_an_oversized_record_is_not_loaded(tmp_path: Path) -> None:
    store = FilesystemGenerations(tmp_path)
    try:
        store.read("ns", ["users/agg"])
        for key in ("ns/~epoch", "ns/users/agg"):
            _plant(tmp_path, key, mode=MODE_RAW, filename=None, value=b"\0" * (16 << 20), expire=None)
        tracemalloc.start()
        try:
            epoch = store._read_epoch("ns")
            counter = store.read("ns", ["users/agg"])[0]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 1 << 20, f"reading a planted 16 MiB record allocated {peak} bytes"
        assert epoch == b"unparsable"
        assert counter < 0
    finally:
        store.close()


@pytest.mark.parametrize(
    "planted",
    [("raw text", MODE_RAW, None, "12"), ("negative", MODE_RAW, None, -5), ("short blob", MODE_RAW, None, b"\x01"),
     ("file", MODE_BINARY, "/etc/hostname", None)],
    ids=lambda planted: planted[0],
)
def test_an_unparsable_counter_is_private_until_the_next_bump(tmp_path: Path, planted: tuple[Any, ...]) -> None:
    _, mode, filename, value = planted
    store, other = FilesystemGenerations(tmp_path), FilesystemGenerations(tmp_path)
    try:
        (before,) = store.read("ns", ["users/agg"])
        _plant(tmp_path, "ns/users/agg", mode=mode, filename=filename, value=value, expire=None)
        first, again = store.read("ns", ["users/agg"]), other.read("ns", ["users/agg"])
        assert first[0] < 0
        assert again[0] < 0
        assert first != again  # private to each reader: nothing shared
        assert store.refused_records == 1
        (bumped,) = store.bump("ns", ["users/agg"])
        assert bumped > before  # restarted at the clock: above every value it had
        assert other.read("ns", ["users/agg"]) == [bumped]
    finally:
        store.close()
        other.close()
