"""Generations for backends without notifications: the filesystem (diskcache) and S3 (or any shared driver).

Each namespace has an *epoch* entry that every bump rewrites after its scopes. A background thread reads the
epoch of every namespace in use every ``interval`` seconds (the filesystem 0.05 s, S3 1 s); when another
process changed it, the local copies of that namespace are forgotten and read afresh. So a process sees
another's write within about one interval, and its own writes at once.

* :class:`FilesystemGenerations`: counters in a diskcache of their own (``{directory}/~generations``) that is
  never culled, created at the clock in microseconds and then incremented inside a transaction, so they only
  grow, even when one expires after ``generation_ttl`` seconds unused (which bounds their number). Records are
  written and parsed by cachekit (:mod:`._records`): inline integers only, never a pickle or a file; a record
  cachekit did not write reads as a private generation. In a signed namespace a scope without a record reads
  as its group's (:mod:`._groups`), so another writer of the directory deleting a bumped scope's record does
  not bring back the floor its pre-bump entries were stored under.
* :class:`TokenGenerations`: a fresh random token per bump, written through the driver itself under
  ``~gen/{namespace}/{scope}`` (S3 has no atomic increment; a new token is all a generation needs). A scope
  without a token reads as its group's token (signed or not: deleting a token needs no key), and a bump writes
  the group's fresh token before the scope's. Give the whole ``key_prefix`` one lifecycle rule, so tokens never
  outlive the entries stored before them.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._types import MISSING
from ..breaker import CircuitBreaker
from . import GenerationStore
from ._groups import GROUP_PREFIX, group_of, groups_of
from ._records import ABSENT, EPOCH_SIZE, UNPARSABLE, RecordDisk, parse_counter, select_record
from ._signing import SEALED_SIZE, GenerationSeal
from ._values import private_value

__all__ = ["FilesystemGenerations", "PolledGenerations", "TokenGenerations"]

logger = logging.getLogger("cachekit")

_EPOCH = "~epoch"
_FLOOR = "~floor"
#: Bumps between two checks of the filesystem store's size.
_SWEEP_EVERY = 1000
#: What a planted epoch record reads as: a constant, so it moves the epoch once, not at every poll.
_UNPARSABLE_EPOCH = b"unparsable"


def _now_us() -> int:
    return time.time_ns() // 1000


class PolledGenerations(GenerationStore):
    """A store whose other-process changes are found by polling one epoch entry per namespace."""

    #: Seconds between polls.
    interval = 1.0

    def __init__(self, identity: Any = None) -> None:
        super().__init__(identity)
        self._epochs: dict[str, bytes | None] = {}
        self._healthy = True
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (the poller then forgets the store)."""
        return self._closed

    def _read_epoch(self, namespace: str) -> bytes | None:
        raise NotImplementedError

    def _write_epoch(self, namespace: str) -> bytes:
        raise NotImplementedError

    def watch(self, namespace: str, listener: Any) -> None:
        super().watch(namespace, listener)
        _POLLER.add(self)

    def trusted(self, namespace: str) -> bool:
        return self._healthy

    def bump(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        return self._bumped(namespace, scopes, None)

    def raise_above(self, namespace: str, scopes: Sequence[str], floors: Sequence[int]) -> list[int]:
        return self._bumped(namespace, scopes, floors)

    def _bumped(self, namespace: str, scopes: Sequence[str], floors: Sequence[int] | None) -> list[int]:
        values = self._bump(namespace, scopes, floors)
        epoch = self._write_epoch(namespace)
        for store in self.siblings():
            if isinstance(store, PolledGenerations):
                store._epochs[namespace] = epoch  # told below: no need to forget at the next poll
        self._notify(namespace, list(zip(scopes, values, strict=True)))
        return values

    def _bump(self, namespace: str, scopes: Sequence[str], floors: Sequence[int] | None) -> list[int]:
        raise NotImplementedError

    def poll(self) -> None:
        """Read every watched namespace's epoch; tell the listeners of those another process changed."""
        if self._driver_closed():
            self.close()
            return
        watched = [ns for ns, group in list(self._listeners.items()) if len(group)]
        try:
            changed = [ns for ns in watched if self._epoch_moved(ns)]
        except Exception as exc:
            if self._healthy:
                logger.warning("cachekit: cannot poll generations (%s); reads ask the store until it answers", exc)
            self._healthy = False
            for listener in self.listeners():
                listener.reset()
            return
        if not self._healthy:
            self._healthy = True
            for listener in self.listeners():
                listener.reset()
                listener.resumed()
            return
        for namespace in changed:
            for listener in self.listeners(namespace):
                listener.reset()

    def _driver_closed(self) -> bool:
        return False

    def _epoch_moved(self, namespace: str) -> bool:
        epoch = self._read_epoch(namespace)
        if namespace not in self._epochs:
            self._epochs[namespace] = epoch
            return False
        if epoch == self._epochs[namespace]:
            return False
        self._epochs[namespace] = epoch
        return True

    def close(self) -> None:
        self._closed = True


class FilesystemGenerations(PolledGenerations):
    """Generations of a filesystem cache directory (see the module docstring).

    Bounded (issue 19, item 5): reads never write (signed namespaces: only their group records); at most
    :attr:`limit` scope records are kept (checked every ``_SWEEP_EVERY`` bumps and every minute), the least
    recently bumped dropped first after raising their namespace's floor record (``{namespace}/~floor``), which is
    what a scope without a record reads as (signed: its group's value; group records are never dropped).
    """

    interval = 0.05
    #: The most scope records kept (about 120 bytes each in SQLite: ~12 MB), over all namespaces.
    limit = 100_000

    def __init__(
        self, directory: Path | str, *, driver: Any = None, generation_ttl: float = 86_400.0, timeout: float = 1.0
    ) -> None:
        super().__init__(identity=("filesystem", str(Path(directory).resolve())))
        self._driver = driver
        self.directory = Path(directory) / "~generations"
        self._ttl = generation_ttl
        self._timeout = timeout
        self._cache: Any = None
        self._lock = threading.Lock()
        self._next_expire = 0.0
        #: Generation records found that cachekit did not write (read as private generations).
        self.refused_records = 0
        #: Records dropped to keep the store within :attr:`limit` (their values raised the floor first).
        self.dropped_records = 0
        self._bump_count = 0
        self._used: set[str] = set()  # namespaces bumped through this store

    def _db(self) -> Any:
        cache = self._cache
        if cache is None:
            import diskcache

            with self._lock:
                if self._cache is None:
                    # Never re-creates a deleted cache directory: that is the driver's to do.
                    self.directory.mkdir(exist_ok=True)
                    self._cache = diskcache.Cache(
                        str(self.directory), eviction_policy="none", cull_limit=0, size_limit=2**62,
                        statistics=False, timeout=self._timeout, disk=RecordDisk,
                    )
                cache = self._cache
        return cache

    def _using(self, call: Callable[[Any], Any]) -> Any:
        try:
            return call(self._db())
        except Exception:
            self._reopen()  # a deleted or replaced directory: open it afresh next time
            raise

    def _reopen(self) -> None:
        with self._lock:
            cache, self._cache = self._cache, None
        if cache is not None:
            with contextlib.suppress(Exception):
                cache.close()

    def _driver_closed(self) -> bool:
        return bool(getattr(self._driver, "_closed", False))

    def read(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        """Read only (issue 19, item 5): no record is created, no write transaction is opened; a scope never
        bumped (or whose record was dropped for the cap) reads as its namespace's floor. Signed namespaces: such a
        scope reads as its group's value, and a missing or refused group record is written (at most
        :data:`~._groups.GROUPS` per namespace)."""

        signed = namespace in self._seals

        def read(cache: Any) -> list[int]:
            now = time.time()
            floor = self._floor(cache, namespace, now)
            values = []
            wanted: dict[str, list[int]] = {}
            for index, scope in enumerate(scopes):
                key = f"{namespace}/{scope}"
                found = self._parsed(namespace, scope, select_record(cache._sql, key, now))
                if found == ABSENT and signed:  # its group's value (issue 19: a deleted record never rolls back)
                    wanted.setdefault(group_of(scope), []).append(index)
                    found = 0
                values.append(floor if found == ABSENT else found if isinstance(found, int) else self._refused(key))
            if wanted:
                for name, value in self._groups(cache, namespace, list(wanted), floor, now).items():
                    for index in wanted[name]:
                        values[index] = value
            return values

        return list(self._using(read))

    def _groups(self, cache: Any, namespace: str, names: list[str], floor: int, now: float) -> dict[str, int]:
        """The values of a signed namespace's groups (:mod:`._groups`); one without a valid record (never created,
        deleted, refused by its MAC) gets a fresh value above the clock and the floor, in one transaction: at most
        :data:`~._groups.GROUPS` records per namespace are ever written by reads, and they only invalidate."""
        values: dict[str, int] = {}
        for name in names:
            found = self._parsed(namespace, name, select_record(cache._sql, f"{namespace}/{name}", now))
            if isinstance(found, int):
                values[name] = found
        unknown = [name for name in names if name not in values]
        if unknown:
            seal = self._seals[namespace]
            with cache.transact():
                for name in unknown:
                    key = f"{namespace}/{name}"
                    record = select_record(cache._sql, key, now)  # created meanwhile by another process?
                    value = seal.open_bytes(namespace, name, record) if isinstance(record, bytes) else None
                    if value is None:
                        value = max(_now_us(), floor + 1)
                        cache.set(key, self._record(namespace, name, value))
                    values[name] = value
        return values

    def _parsed(self, namespace: str, scope: str, found: int | bytes | str) -> int | str:
        """A counter (verified by the namespace's seal when signed), :data:`ABSENT`, else :data:`UNPARSABLE`."""
        seal = self._seals.get(namespace)
        if seal is None:
            return parse_counter(found)
        if found == ABSENT:
            return ABSENT
        value = seal.open_bytes(namespace, scope, found) if isinstance(found, bytes) else None
        if value is None:
            self._refuse(f"generation record {namespace}/{scope!r} in {self.directory}")
            return UNPARSABLE
        return value

    def _record(self, namespace: str, scope: str, value: int) -> int | bytes:
        seal = self._seals.get(namespace)
        return value if seal is None else seal.seal_bytes(namespace, scope, value)

    def _floor(self, cache: Any, namespace: str, now: float) -> int:
        """What a scope without a record reads as: the highest value dropped from the namespace (0 at first)."""
        found = self._parsed(namespace, _FLOOR, select_record(cache._sql, f"{namespace}/{_FLOOR}", now))
        if found == ABSENT:
            return 0
        return found if isinstance(found, int) else self._refused(f"{namespace}/{_FLOOR}")

    def _bump(self, namespace: str, scopes: Sequence[str], floors: Sequence[int] | None) -> list[int]:
        self._used.add(namespace)

        def bump(cache: Any) -> list[int]:
            values = []
            with cache.transact():
                now = time.time()
                floor = max(self._floor(cache, namespace, now), 0)
                if namespace in self._seals:
                    return self._grouped_bump(cache, namespace, scopes, floors, floor, now)
                for index, scope in enumerate(scopes):
                    key = f"{namespace}/{scope}"
                    old = self._parsed(namespace, scope, select_record(cache._sql, key, now))
                    # Absent or planted: restart at the clock, above any value it had (see the module docstring).
                    value = max(old + 1 if isinstance(old, int) else _now_us(), floor + 1)
                    if floors is not None:
                        value = max(value, floors[index] + 1)
                    cache.set(key, self._record(namespace, scope, value))  # no expiry: the cap bounds them
                    values.append(value)
            return values

        values = list(self._using(bump))
        if self._bumps_since_sweep() >= _SWEEP_EVERY:
            self._using(self._sweep)
        return values

    def _grouped_bump(
        self, cache: Any, namespace: str, scopes: Sequence[str], floors: Sequence[int] | None, floor: int, now: float
    ) -> list[int]:
        """A signed bump (inside the caller's transaction): each scope's group first goes to a fresh value (at or
        above the clock, above its own, each of its scopes' values and the floors), then each scope to that value.
        A scope whose record is deleted later reads its group's value: its current one or a later one, never one
        its earlier entries were stored under (issue 19)."""
        values = [0] * len(scopes)
        for name, indexes in groups_of(scopes).items():
            found = self._parsed(namespace, name, select_record(cache._sql, f"{namespace}/{name}", now))
            top = max(_now_us(), floor + 1, found + 1 if isinstance(found, int) else 0)
            for index in indexes:
                scope = scopes[index]
                old = self._parsed(namespace, scope, select_record(cache._sql, f"{namespace}/{scope}", now))
                top = max(top, old + 1 if isinstance(old, int) else 0, floors[index] + 1 if floors is not None else 0)
            cache.set(f"{namespace}/{name}", self._record(namespace, name, top))
            for index in indexes:
                values[index] = top
                cache.set(f"{namespace}/{scopes[index]}", self._record(namespace, scopes[index], top))
        return values

    def _bumps_since_sweep(self) -> int:
        self._bump_count += 1
        return self._bump_count

    def _sweep(self, cache: Any) -> int:
        """Keep at most :attr:`limit` records (and drop expired ones of older versions): each dropped value first
        raises its namespace's floor, so a dropped scope reads at or above every value it had (never older)."""
        self._bump_count = 0
        # Only the namespaces this process uses: it knows whether they are signed (a floor must be sealed with
        # their key); the others are swept by the processes that use them.
        known = sorted({*self._seals, *self._listeners, *self._used}, key=len, reverse=True)
        if not known:
            return 0

        def ours(found: list[Any]) -> list[tuple[int, str, str]]:
            rows = []
            for rowid, key in found:
                namespace = next((n for n in known if isinstance(key, str) and key.startswith(n + "/")), None)
                if namespace is not None:
                    rows.append((rowid, key, namespace))
            return rows

        now = time.time()
        kept = f"key NOT LIKE '%/{_EPOCH}' AND key NOT LIKE '%/{_FLOOR}' AND key NOT LIKE '%/{GROUP_PREFIX}%'"
        rows = ours(cache._sql(
            f"SELECT rowid, key FROM Cache WHERE raw = 1 AND {kept} AND expire_time IS NOT NULL "
            "AND expire_time <= ? LIMIT 10000", (now,),
        ).fetchall())
        ((count,),) = cache._sql("SELECT COUNT(*) FROM Cache").fetchall()
        excess = count - len(rows) - self.limit
        if excess > 0:
            rows += ours(cache._sql(
                f"SELECT rowid, key FROM Cache WHERE raw = 1 AND {kept} ORDER BY store_time LIMIT ?",
                (excess + 10_000,),
            ).fetchall())[:excess]
        if not rows:
            return 0
        highest: dict[str, int] = {}
        with cache.transact():
            for rowid, key, namespace in rows:
                scope = key[len(namespace) + 1 :]
                value = self._parsed(namespace, scope, select_record(cache._sql, key, 0.0))
                if isinstance(value, int):
                    highest[namespace] = max(highest.get(namespace, 0), value)
                cache._sql("DELETE FROM Cache WHERE rowid = ?", (rowid,))
            for namespace, value in highest.items():
                floor = self._floor(cache, namespace, now)
                if value > floor:
                    cache.set(f"{namespace}/{_FLOOR}", self._record(namespace, _FLOOR, value))
        self.dropped_records += len(rows)
        return len(rows)

    def _refused(self, key: str) -> int:
        """A record cachekit did not write: counted, logged once, read as a private generation."""
        self.refused_records += 1
        if self.refused_records == 1:
            logger.warning(
                "cachekit: generation record %r in %s is not one cachekit wrote (not read; this process uses a "
                "private generation until the next write); is another program writing the cache directory?",
                key, self.directory,
            )
        return private_value()

    def _read_epoch(self, namespace: str) -> bytes | None:
        now = time.monotonic()
        if now >= self._next_expire:
            self._next_expire = now + 60.0
            self._using(self._sweep)  # raises floors, then removes rows; never a file
        found = self._using(lambda cache: select_record(cache._sql, f"{namespace}/{_EPOCH}", time.time()))
        if isinstance(found, bytes) and len(found) == EPOCH_SIZE:
            return found
        return None if found == ABSENT else _UNPARSABLE_EPOCH

    def _write_epoch(self, namespace: str) -> bytes:
        token = random.getrandbits(64).to_bytes(EPOCH_SIZE, "big")
        self._using(lambda cache: cache.set(f"{namespace}/{_EPOCH}", token))
        return token

    def close(self) -> None:
        super().close()
        self._reopen()


class TokenGenerations(PolledGenerations):
    """Generations kept through a driver's own ``get``/``set`` as random tokens (S3; see the module docstring)."""

    ordered = False

    def __init__(self, driver: Any, *, interval: float = 1.0) -> None:
        super().__init__(identity=_driver_identity(driver))
        self._driver = driver
        self.interval = interval
        #: Tokens of unsigned namespaces found that cachekit did not write (signed: :attr:`refused_values`).
        self.refused_records = 0

    def read(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        """Each scope's token; a scope without one reads as its group's (:mod:`._groups`), and a group without a
        token of ours (never written, deleted, junk) gets a fresh one: a missing token never reads as an older
        value (issue 19: a client with only delete rights rolled a fresh process back to the pre-bump entries)."""
        seal = self._seals.get(namespace)
        values = []
        groups: dict[str, int] = {}
        for scope in scopes:
            blob = self._token(f"~gen/{namespace}/{scope}", SEALED_SIZE if seal is not None else EPOCH_SIZE)
            if blob is MISSING:
                name = group_of(scope)
                value = groups.get(name)
                if value is None:
                    value = groups[name] = self._group(namespace, name, seal)
                values.append(value)
                continue
            value = self._opened(namespace, scope, blob, seal)
            values.append(private_value() if value is None else value)  # not a token of ours: unknown, private
        return values

    def _opened(self, namespace: str, scope: str, blob: bytes, seal: GenerationSeal | None) -> int | None:
        """The token in ``blob``, or ``None`` (counted) when it is not one cachekit wrote (issue 19)."""
        value = seal.open_bytes(namespace, scope, blob) if seal is not None else _plain_token(blob)
        if value is not None and 0 < value < 1 << 49:
            return value
        if seal is not None:
            self._refuse(f"generation token {f'~gen/{namespace}/{scope}'!r}")
        else:
            self.refused_records += 1
        return None

    def _group(self, namespace: str, name: str, seal: GenerationSeal | None) -> int:
        """The token of group ``name``; a fresh one (written) when it has none of ours: that only invalidates."""
        blob = self._token(f"~gen/{namespace}/{name}", SEALED_SIZE if seal is not None else EPOCH_SIZE)
        value = None if blob is MISSING else self._opened(namespace, name, blob, seal)
        return self._write_token(namespace, name, seal) if value is None else value

    def _write_token(self, namespace: str, scope: str, seal: GenerationSeal | None, token: int = 0) -> int:
        """Write ``token`` (a fresh random one when 0) as the scope's, sealed when the namespace is signed."""
        token = token or random.getrandbits(48) + 1
        blob = seal.seal_bytes(namespace, scope, token) if seal is not None else token.to_bytes(8, "big")
        self._driver.set(f"~gen/{namespace}/{scope}", blob, None)
        return token

    def _token(self, key: str, size: int = EPOCH_SIZE) -> Any:
        """At most ``size`` + 1 bytes of a token (a ranged GET where the driver has one), or MISSING."""
        prefix = getattr(self._driver, "get_prefix", None)
        if prefix is not None:
            return prefix(key, size + 1)  # one more: a longer object is not a token
        blob = self._driver.get(key)
        return blob if blob is MISSING else bytes(blob)[: size + 1]

    def _bump(self, namespace: str, scopes: Sequence[str], floors: Sequence[int] | None) -> list[int]:
        """A fresh token for each of the scopes' groups first, then the same token for its scopes: a crash in
        between only invalidates, and a scope whose token is deleted later reads its group's token, its current
        one or a later one, never one its earlier entries were stored under."""
        seal = self._seals.get(namespace)
        tokens = {name: self._write_token(namespace, name, seal) for name in groups_of(scopes)}
        return [self._write_token(namespace, scope, seal, tokens[group_of(scope)]) for scope in scopes]

    def _driver_closed(self) -> bool:
        return bool(getattr(self._driver, "_closed", False))

    def probe(self) -> bool:
        """A ranged read of a few bytes through the driver's breaker, let through at once (a driver without a
        breaker: True, the retry itself is the probe)."""
        breaker = getattr(self._driver, "breaker", None)
        if not isinstance(breaker, CircuitBreaker):
            return True
        return self._probe_through(breaker, lambda: self._token(f"~gen/{_EPOCH}"))

    def _read_epoch(self, namespace: str) -> bytes | None:
        blob = self._token(f"~gen/{namespace}/{_EPOCH}")  # a few bytes, however large the object
        return None if blob is MISSING else bytes(blob)

    def _write_epoch(self, namespace: str) -> bytes:
        token = random.getrandbits(64).to_bytes(8, "big")
        self._driver.set(f"~gen/{namespace}/{_EPOCH}", token, None)
        return token


def _plain_token(blob: bytes) -> int | None:
    return int.from_bytes(blob, "big") if len(blob) == EPOCH_SIZE else None


def _driver_identity(driver: Any) -> Any:
    """What names one S3 backend: the endpoint, the bucket and the key prefix."""
    bucket, prefix = getattr(driver, "bucket", None), getattr(driver, "key_prefix", None)
    if bucket is None:
        return None
    try:
        endpoint = driver.client.meta.endpoint_url
    except Exception:
        return None
    return ("s3", endpoint, bucket, prefix)


class _Poller:
    """One daemon thread polling every live polled store when its interval is due."""

    def __init__(self) -> None:
        self._stores: weakref.WeakSet[PolledGenerations] = weakref.WeakSet()
        self._due: weakref.WeakKeyDictionary[PolledGenerations, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, store: PolledGenerations) -> None:
        with self._lock:
            self._stores.add(store)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cachekit-generation-poll", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                stores = [s for s in self._stores if not s.closed]
                if not stores:
                    self._thread = None
                    return
            now = time.monotonic()
            for store in stores:
                if now >= self._due.get(store, 0.0):
                    self._due[store] = now + store.interval
                    store.poll()
            del stores
            time.sleep(0.025)


_POLLER = _Poller()
