"""The filesystem drivers against a hostile or failing directory (issue 9), on real diskcache directories.

Planted pickle and file-reference rows (no code runs, no file outside the directory is opened or removed, the
read returns fresh data), a directory deleted under load (no read over 1 s, hits again within 1 s), a full
tmpfs (no read fails, writes are dropped and counted, hits resume once space frees), and partition folders
that a miss does not create.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import diskcache
import pytest
from diskcache.core import MODE_BINARY, MODE_PICKLE, MODE_RAW, MODE_TEXT

from cachekit import Cache, cached
from cachekit.drivers.filesystem import FilesystemDriver
from cachekit.drivers.partition_filesystem import PartitionAwareFilesystemCache
from cachekit.errors import CorruptEntryError, DriverError


class _Source:
    """A repository whose reads are counted, so a test can tell a hit from a call to the source."""

    name = "users"

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.calls = 0

    @cached(action="get")
    def get(self, id: str) -> dict[str, Any]:
        self.calls += 1
        return {"id": id, "fresh": True}


def _plant(directory: Path, key: str, *, mode: int, filename: str | None, value: Any) -> None:
    """Insert a row as another writer of the directory could (diskcache's own column layout)."""
    with sqlite3.connect(directory / "cache.db") as con:
        con.execute("DELETE FROM Cache WHERE key = ?", (key,))
        now = time.time()
        con.execute(
            "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size, mode,"
            " filename, value) VALUES (?, 1, ?, NULL, ?, 0, NULL, 0, ?, ?, ?)",
            (key, now, now, mode, filename, value),
        )
    con.close()


class _Marker:
    """Unpickling this creates a file: proof that code ran in the reader."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[_Source]:
    cache = Cache(driver="filesystem", namespace="hostile", config={"directory": str(tmp_path / "cache")})
    yield _Source(cache)
    cache.close()


# -- planted rows ---------------------------------------------------------------------------------------------


def test_a_planted_pickle_row_runs_no_code_and_the_read_is_fresh(repo: _Source, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    key = repo.get.cache_key("u1")
    with diskcache.Cache(str(tmp_path / "cache")) as intruder:  # diskcache's default Disk pickles objects
        intruder.set(key, _Marker(marker))
    assert not marker.exists()
    assert repo.get("u1") == {"id": "u1", "fresh": True}
    assert not marker.exists()
    assert repo.calls == 1
    assert repo.cache.stats().errors == 1
    assert repo.cache.driver.stats()["refused_entries"] == 1
    assert repo.get("u1") == {"id": "u1", "fresh": True}  # the row was dropped and replaced: a hit now
    assert repo.calls == 1
    assert pickle.dumps(_Marker(marker))  # the planted object really was a live pickle


@pytest.mark.parametrize(
    "mode", [MODE_RAW, MODE_BINARY, MODE_TEXT, MODE_PICKLE], ids=["raw", "binary", "text", "pickle-file"]
)
def test_a_planted_file_reference_is_never_opened_or_removed(repo: _Source, tmp_path: Path, mode: int) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "secret.val"
    victim.write_bytes(b"not the cache's")
    fifo = outside / "pipe"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes: a read that followed it would hang
    key, other = repo.get.cache_key("u1"), repo.get.cache_key("u2")
    assert repo.get("u0")  # creates the database
    _plant(tmp_path / "cache", key, mode=mode, filename=os.path.relpath(fifo, tmp_path / "cache"), value=None)
    _plant(tmp_path / "cache", other, mode=mode, filename=str(victim), value=None)
    results: list[Any] = []
    reader = threading.Thread(target=lambda: results.extend([repo.get("u1"), repo.get("u2")]), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "the read followed the planted filename into a FIFO"
    assert results == [{"id": "u1", "fresh": True}, {"id": "u2", "fresh": True}]
    assert victim.read_bytes() == b"not the cache's"  # dropping the rows did not delete the files
    assert fifo.exists()
    assert repo.cache.driver.stats()["refused_entries"] == 2


def test_dropping_a_row_that_names_the_database_leaves_the_database(tmp_path: Path) -> None:
    with FilesystemDriver(directory=tmp_path / "cache") as driver:
        driver.set("keep", b"kept")
        _plant(tmp_path / "cache", "evil", mode=MODE_BINARY, filename="cache.db", value=None)
        _plant(tmp_path / "cache", "evil2", mode=MODE_BINARY, filename="../../escape.val", value=None)
        (tmp_path / "escape.val").write_bytes(b"x")
        assert driver.delete("evil")
        assert driver.delete("evil2")
        assert driver.clear("") == 1
        assert (tmp_path / "cache" / "cache.db").is_file()
        assert (tmp_path / "escape.val").read_bytes() == b"x"


def test_a_row_pointing_at_dev_zero_is_not_read() -> None:
    """In a child under a 1 GiB address-space limit: reading /dev/zero would fail with MemoryError there."""
    script = """
import resource, sqlite3, sys, tempfile, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from cachekit.drivers.filesystem import FilesystemDriver
from cachekit.errors import CorruptEntryError
with tempfile.TemporaryDirectory() as directory:
    with FilesystemDriver(directory=directory) as driver:
        driver.set("other", b"x")
        con = sqlite3.connect(directory + "/cache.db")
        con.execute("INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count, tag, size,"
                    " mode, filename, value) VALUES ('zero', 1, 0, NULL, 0, 0, NULL, 0, 2, '/dev/zero', NULL)")
        con.commit(); con.close()
        try:
            driver.get("zero")
        except CorruptEntryError as exc:
            print("refused:", exc)
        print(driver.get("zero"))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused: filesystem cache entry 'zero'" in done.stdout
    assert done.stdout.strip().endswith("MISSING")  # dropped after the refusal


def test_a_non_bytes_raw_row_is_refused(tmp_path: Path) -> None:
    with FilesystemDriver(directory=tmp_path) as driver:
        driver.set("a", b"v")
        _plant(tmp_path, "text", mode=MODE_RAW, filename=None, value="a str, not bytes")
        with pytest.raises(CorruptEntryError, match="row holding a str"):
            driver.get("text")


# -- a deleted or replaced directory --------------------------------------------------------------------------


def test_the_directory_deleted_under_load(repo: _Source, tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    ids = [f"u{i}" for i in range(20)]
    for id in ids:
        repo.get(id)
    events: list[tuple[float, float, bool]] = []  # (started, seconds, hit)
    lock = threading.Lock()
    stop = [time.monotonic() + 30.0]  # a bound; set to 1.1 s after the deletion once it is made

    def work(offset: int) -> None:
        for number in range(20_000):
            if time.monotonic() >= stop[0]:
                return
            before, started = repo.calls, time.monotonic()
            assert repo.get(ids[(number + offset) % len(ids)])["fresh"]
            with lock:
                events.append((started, time.monotonic() - started, repo.calls == before))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    deleted_at = time.monotonic()
    shutil.rmtree(directory)
    stop[0] = deleted_at + 1.1  # the checks below look at the first second after the deletion
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    slowest = max(seconds for _, seconds, _ in events)
    assert slowest < 1.0, f"a read took {slowest:.2f} s"
    # Hits from the recreated database: after the first re-check (0.25 s), within 1 s of the deletion.
    assert any(hit for started, _, hit in events if deleted_at + 0.3 < started < deleted_at + 1.0)
    assert (directory / "cache.db").is_file()
    assert repo.cache.driver.stats()["reopened"] >= 1
    write = threading.Thread(target=lambda: repo.cache.set("after", 1))  # no transaction was left open
    began = time.monotonic()
    write.start()
    write.join(5)
    assert time.monotonic() - began < 1.0
    assert repo.cache.get("after") == 1


def test_driver_calls_raise_only_driver_errors_while_the_directory_churns(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    driver = FilesystemDriver(directory=directory)
    seen: list[BaseException] = []
    stop = time.monotonic() + 1.5

    def work(worker: int) -> None:
        for number in range(50_000):
            if time.monotonic() >= stop:
                return
            key = f"k{(number + worker) % 50}"
            try:
                driver.set(key, b"v" * 100) if number % 3 == 0 else driver.get(key)
            except DriverError:
                pass
            except BaseException as exc:
                seen.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(5):
        time.sleep(0.2)
        shutil.rmtree(directory, ignore_errors=True)
    for thread in threads:
        thread.join(10)
    assert seen == []
    driver.set("final", b"ok")
    assert driver.get("final") == b"ok"
    driver.close()


def test_two_instances_converge_on_a_replaced_directory(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    with FilesystemDriver(directory=directory) as first, FilesystemDriver(directory=directory) as second:
        first.set("k", b"old")
        assert second.get("k") == b"old"
        shutil.rmtree(directory)
        directory.mkdir()
        first.set("k", b"new")  # a write checks the database every time: it reopens the new one
        deadline = time.monotonic() + 1.0
        while second.get("k") != b"new" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.get("k") == b"new"
        assert first.delete("k")
        time.sleep(0.3)
        assert second.get("k") != b"new"


def test_create_directory_false_does_not_recreate_a_deleted_directory(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    directory.mkdir()
    with FilesystemDriver(directory=directory, create_directory=False) as driver:
        driver.set("k", b"v")
        shutil.rmtree(directory)
        with pytest.raises(DriverError, match="create_directory=False"):
            driver.set("k", b"v")
        assert not directory.exists()


# -- partition folders ----------------------------------------------------------------------------------------


def test_a_miss_on_a_new_partition_value_creates_nothing(tmp_path: Path) -> None:
    with PartitionAwareFilesystemCache(directory=tmp_path / "pfs") as driver:
        before = sorted(path.relative_to(tmp_path) for path in (tmp_path / "pfs").rglob("*"))
        for region in range(50):
            key = f"app/resource=users/partition=by_region/region=r{region}/action=count"
            assert not driver.get(key)
            assert driver.delete(key) is False
        unseen = [f"app/resource=users/partition=by_region/region=x{i}/action=get" for i in range(5)]
        assert driver.delete_many(unseen) == 0
        after = sorted(path.relative_to(tmp_path) for path in (tmp_path / "pfs").rglob("*"))
        assert after == before
        driver.set("app/resource=users/partition=by_region/region=r1/action=count", b"1")
        folder = tmp_path / "pfs" / "app" / "resource=users" / "partition=by_region" / "region=r1"
        assert (folder / "cache.db").is_file()
        assert driver.get("app/resource=users/partition=by_region/region=r1/action=count") == b"1"


def test_a_deleted_partition_folder_is_not_recreated_by_a_read(tmp_path: Path) -> None:
    key = "app/resource=users/partition=by_region/region=eu/action=count"
    with PartitionAwareFilesystemCache(directory=tmp_path) as driver:
        driver.set(key, b"1")
        folder = tmp_path / "app" / "resource=users" / "partition=by_region"
        shutil.rmtree(folder)
        time.sleep(0.3)  # past the re-check interval
        assert not driver.get(key)
        assert not folder.exists()
        driver.set(key, b"2")
        assert driver.get(key) == b"2"


# -- a full disk ------------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards; skipped where mounting is not permitted (not root)."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}); the full-disk test needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def _fill(path: Path) -> None:
    """Write ``path`` until the file system is full (unbuffered, so nothing is left to fail at close)."""
    with open(path, "wb", buffering=0) as filler:
        for _ in range(10_000):
            try:
                filler.write(b"\0" * 4096)
            except OSError:
                break
    assert os.statvfs(path).f_bavail == 0


def test_a_full_disk_fails_writes_not_reads(small_disk: Path) -> None:
    cache = Cache(driver="filesystem", namespace="full", config={"directory": str(small_disk / "cache")})
    repo = _Source(cache)
    hot = [f"hot{i}" for i in range(5)]
    for id in hot:
        repo.get(id)
    filler = small_disk / "filler"
    _fill(filler)
    calls = repo.calls
    for _ in range(20):  # lru: every hit would write its access time; none may fail
        for id in hot:
            assert repo.get(id) == {"id": id, "fresh": True}
    assert repo.calls == calls  # all hits
    for number in range(40):
        assert repo.get(f"new{number}")["fresh"]  # computed; the write is dropped, the read does not fail
    driver_stats = cache.driver.stats()
    assert driver_stats["dropped_writes"] > 0
    assert cache.stats().errors >= driver_stats["dropped_writes"]
    filler.unlink()
    repo.get("after")  # space again: stored...
    calls = repo.calls
    assert repo.get("after")["fresh"]
    assert repo.calls == calls  # ...and a hit
    cache.close()
