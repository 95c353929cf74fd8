"""Generations for backends without notifications: the filesystem (diskcache) and S3 (or any shared driver).

Each namespace has an *epoch* entry that every bump rewrites after its scopes. A background thread reads the
epoch of every namespace in use every ``interval`` seconds (the filesystem 0.05 s, S3 1 s); when another
process changed it, the local copies of that namespace are forgotten and read afresh. So a process sees
another's write within about one interval, and its own writes at once.

* :class:`FilesystemGenerations`: counters in a diskcache of their own (``{directory}/~generations``) that is
  never culled, created at the clock in microseconds and then incremented inside a transaction, so they only
  grow, even when one expires after ``generation_ttl`` seconds unused (which bounds their number). Records are
  written and parsed by cachekit (:mod:`._records`): inline integers only, never a pickle or a file; a record
  cachekit did not write reads as a private generation.
* :class:`TokenGenerations`: a fresh random token per bump, written through the driver itself under
  ``~gen/{namespace}/{scope}`` (S3 has no atomic increment; a new token is all a generation needs). Give the
  whole ``key_prefix`` one lifecycle rule, so tokens never outlive the entries stored before them.
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
from . import GenerationStore
from ._records import ABSENT, EPOCH_SIZE, RecordDisk, parse_counter, private_value, select_record
from ._signing import SEALED_SIZE

__all__ = ["FilesystemGenerations", "PolledGenerations", "TokenGenerations"]

logger = logging.getLogger("cachekit")

_EPOCH = "~epoch"
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
        values = self._bump(namespace, scopes)
        epoch = self._write_epoch(namespace)
        for store in self.siblings():
            if isinstance(store, PolledGenerations):
                store._epochs[namespace] = epoch  # told below: no need to forget at the next poll
        self._notify(namespace, list(zip(scopes, values, strict=True)))
        return values

    def _bump(self, namespace: str, scopes: Sequence[str]) -> list[int]:
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
    """Generations of a filesystem cache directory (see the module docstring)."""

    interval = 0.05

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
        def read(cache: Any) -> list[int]:
            values = []
            for scope in scopes:
                key = f"{namespace}/{scope}"
                found = parse_counter(select_record(cache._sql, key, time.time()))
                if found == ABSENT:
                    cache.add(key, _now_us(), expire=self._ttl)  # atomic: only if still absent
                    found = parse_counter(select_record(cache._sql, key, time.time()))
                values.append(found if isinstance(found, int) else self._refused(key))
            return values

        return list(self._using(read))

    def _bump(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        def bump(cache: Any) -> list[int]:
            values = []
            with cache.transact():
                for scope in scopes:
                    key = f"{namespace}/{scope}"
                    old = parse_counter(select_record(cache._sql, key, time.time()))
                    # Absent or planted: restart at the clock, above any value it had (see the module docstring).
                    value = old + 1 if isinstance(old, int) else _now_us()
                    cache.set(key, value, expire=self._ttl)
                    values.append(value)
            return values

        return list(self._using(bump))

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
            self._using(lambda cache: cache.expire())  # RecordDisk: removes rows, never files
        found = self._using(lambda cache: select_record(cache._sql, f"{namespace}/{_EPOCH}", time.time()))
        if isinstance(found, bytes):
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

    def read(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        seal = self._seals.get(namespace)
        values = []
        for scope in scopes:
            key = f"~gen/{namespace}/{scope}"
            blob = self._token(key, SEALED_SIZE if seal is not None else EPOCH_SIZE)
            if blob is MISSING:
                values.append(0)  # never bumped (a deleted token: the view keeps the one it knew)
                continue
            value = seal.open_bytes(namespace, scope, blob) if seal is not None else _plain_token(blob)
            if value is None or not 0 < value < 1 << 49:
                if seal is not None:
                    self._refuse(f"generation token {key!r}")
                value = private_value()  # not a token of ours: unknown, private (issue 19)
            values.append(value)
        return values

    def _token(self, key: str, size: int = EPOCH_SIZE) -> Any:
        """At most ``size`` + 1 bytes of a token (a ranged GET where the driver has one), or MISSING."""
        prefix = getattr(self._driver, "get_prefix", None)
        if prefix is not None:
            return prefix(key, size + 1)  # one more: a longer object is not a token
        blob = self._driver.get(key)
        return blob if blob is MISSING else bytes(blob)[: size + 1]

    def _bump(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        seal = self._seals.get(namespace)
        values = []
        for scope in scopes:
            token = random.getrandbits(48) + 1
            blob = seal.seal_bytes(namespace, scope, token) if seal is not None else token.to_bytes(8, "big")
            self._driver.set(f"~gen/{namespace}/{scope}", blob, None)
            values.append(token)
        return values

    def _driver_closed(self) -> bool:
        return bool(getattr(self._driver, "_closed", False))

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
