"""The driver contract: bytes in, bytes out.

A driver stores opaque blobs under string keys. It knows nothing about resources, serializers or policies; the
:class:`~cachekit.Cache` above it does. Every driver in cachekit, and any third-party one, implements
:class:`Driver` and passes the shared contract suite in ``tests/contract/``.

Rules every driver follows:

* ``get`` returns :data:`~cachekit.MISSING` on a miss (never ``None``: ``None`` is not a blob).
* ``set(key, blob, ttl)`` stores the blob for ``ttl`` seconds (``None``: no expiry). A driver with native expiry
  (Redis ``PX``) uses it; others record the deadline and drop the entry when they meet it past its deadline.
  Independently, the value envelope carries ``expires_at``, so an entry past its deadline is never served.
* ``clear(prefix)`` removes keys that start with ``prefix`` (all of the driver's keys when ``prefix`` is empty)
  and nothing else: never other applications' keys that share the server or bucket.
* ``keys(prefix)`` lists stored keys under ``prefix``, without the driver's own ``key_prefix``.
* A failure to reach the backend raises :class:`~cachekit.errors.DriverUnavailable`; any other backend failure
  raises :class:`~cachekit.errors.DriverError` with the original exception as ``__cause__``.
* ``add`` (store if absent) and ``replace`` (compare-and-set) are atomic where a driver overrides them
  (memory, Redis, filesystem, tiers); the defaults here read then write.
* Batch operations have ``_many`` names; the defaults here loop, and drivers override them when the backend
  batches (Redis ``MGET``, S3 ``delete_objects``).
* Every operation has an async twin with an ``a`` prefix (``aget``, ``aset``, ``aclear_many``, ``aclose`` ...),
  with the same arguments, results and errors. Drivers with ``supports_async`` implement them natively (Redis
  through ``redis.asyncio``; the memory driver inline, it never blocks). The defaults here run the sync method
  on cachekit's bounded executor (:mod:`cachekit._executor`), never the event loop's default executor, or
  inline when the driver does not block.

**Capabilities and generations.** A driver says who sees its entries (:attr:`Driver.sharing`) and, when other
processes do, brings the store of the generation counters that invalidation bumps
(:meth:`Driver.generation_store`; see :mod:`cachekit.generations`): cachekit never picks either by the driver's
name. A driver that declares neither is refused by :class:`~cachekit.Cache` rather than given in-process
generations, which would serve stale entries after another process's write. Adding a backend is one module with
its :class:`Driver` subclass plus one line in the registry (:func:`cachekit.drivers.register_driver`)::

    class MemcachedDriver(Driver):
        name = "memcached"
        sharing = NETWORK                   # every process reaching the server sees the entries
        leaves_orphans = False              # memcached evicts by itself
        def generation_store(self) -> GenerationStore:
            return MemcachedGenerations(self)   # counters in the backend, bumped atomically, watched or polled
        ...

**The read hook.** :meth:`Driver.reader` returns the one function a :class:`~cachekit.Cache` reads a key with
(``cache._read``): the driver's get, the codec's decode and the fail-open rules, in one frame. The default is the
generic body (:func:`generic_reader`); a driver may return a faster body of its own that reads exactly what the
generic one reads (the memory driver's fused reader; the tiered driver's, which answers a memory tier's hits
from the value decoded at their first hit). ``tests/contract/test_reader_contract.py`` holds every driver's
reader to the generic body.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

from .._executor import BoundedExecutor, run_blocking
from .._types import MISSING, Missing
from ..errors import CodecError

if TYPE_CHECKING:
    from ..generations import GenerationStore

__all__ = ["HOST", "NETWORK", "PROCESS", "Driver", "ReadCounter", "Reader", "generic_reader"]

#: :attr:`Driver.sharing`: entries live in this process only (the memory and null drivers).
PROCESS: Final = "process"
#: :attr:`Driver.sharing`: processes of one machine share the entries (a directory).
HOST: Final = "host"
#: :attr:`Driver.sharing`: every process that reaches the server or bucket shares them (Redis, S3).
NETWORK: Final = "network"

#: What :meth:`Driver.reader` returns: a key to its decoded value or :data:`~cachekit.MISSING`; never raises.
Reader = Callable[[str], Any]


class ReadCounter(Protocol):
    """Where a reader counts (the cache's :class:`~cachekit.stats.ReadCounts`)."""

    hits: int
    misses: int


def generic_reader(
    get: Callable[[str], Any],
    counts: ReadCounter,
    failed: Callable[[str, Exception], None],
    decode: Callable[[Any], Any] | None,
    decode_at: Callable[[str, Any], Any] | None = None,
) -> Reader:
    """The generic read body: ``get(key)``, then ``decode`` (or ``decode_at(key, blob)``), failing open.

    A hit counts in ``counts.hits``; a miss, or a blob whose envelope has expired, in ``counts.misses``; a
    failing ``get`` or a :class:`~cachekit.errors.CodecError` is reported to ``failed(key, exc)`` (which counts
    it and drops a corrupt entry) and reads as :data:`~cachekit.MISSING`.
    """

    def read(key: str) -> Any:
        try:
            raw: Any = get(key)
        except Exception as exc:
            failed(key, exc)
            return MISSING
        if raw is MISSING:
            counts.misses += 1
            return MISSING
        if decode is not None:
            try:
                raw = decode(raw) if decode_at is None else decode_at(key, raw)
            except CodecError as exc:
                failed(key, exc)
                return MISSING
            if raw is MISSING:  # expired by its envelope
                counts.misses += 1
                return MISSING
        counts.hits += 1
        return raw

    return read


class Driver(abc.ABC):
    """Base class of cache drivers. Subclasses implement the abstract methods; the rest have defaults.

    E.g.::

        class DictDriver(Driver):
            name = "dict"
            def __init__(self) -> None:
                self._data: dict[str, bytes] = {}
            def get(self, key): return self._data.get(key, MISSING)
            ...
    """

    #: Registry name ("memory", "redis", ...); also shown in stats.
    name: ClassVar[str] = "driver"
    #: True when calls may block on I/O, so async callers run them in a thread (``asyncio.to_thread``).
    blocking: bool = True
    #: True when the driver stores live Python objects instead of blobs (the memory driver's objects mode).
    stores_objects: bool = False
    #: True when :meth:`acquire_lock`/:meth:`release_lock` give a lock shared by every process using the backend.
    supports_locks: bool = False
    #: True when the async twins are native: ``await driver.aget(key)`` never parks a thread.
    supports_async: bool = False
    #: Where the default async twins run blocking calls; ``None``: the shared pool (``CACHEKIT_ASYNC_WORKERS``).
    async_executor: BoundedExecutor | None = None
    #: Who sees the entries: :data:`PROCESS`, :data:`HOST` or :data:`NETWORK`. ``None`` (undeclared) is refused by
    #: :class:`~cachekit.Cache` unless :meth:`generation_store` gives a store: a shared backend with in-process
    #: generations would serve entries another process's write invalidated.
    sharing: str | None = None
    #: True when the backend never removes an entry by itself (no size bound, no eviction of its own): entries
    #: left under old generations then need a TTL, and ``ttl=None`` is refused (Redis, S3).
    leaves_orphans: bool = False
    #: True when :meth:`get` returns the very blob :meth:`set` was given, and nothing outside this process (no
    #: other process, no file, no network) can change it: a :class:`~cachekit.Cache` then trusts the blobs without
    #: the codec's checksum, and values decoded from an entry's blob may be kept and copied for later hits
    #: (``trusted`` of :meth:`reader`). The plain memory driver. Not inherited: a subclass (which may change
    #: :meth:`get`) has it only when its own class body declares it again.
    holds_blobs_in_process: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "holds_blobs_in_process" not in cls.__dict__:  # a promise about the class's own get: not inherited
            cls.holds_blobs_in_process = False

    def generation_store(self) -> GenerationStore | None:
        """The store of this backend's generation counters, shared by every process that shares the entries.

        ``None`` (the default): a driver whose :attr:`sharing` is :data:`PROCESS` gets in-process generations;
        any other is refused. Called once per driver instance (:func:`cachekit.generations.store_for` keeps it).
        """
        return None

    def reader(
        self,
        counts: ReadCounter,
        failed: Callable[[str, Exception], None],
        decode: Callable[[Any], Any] | None = None,
        *,
        decode_at: Callable[[str, Any], Any] | None = None,
        get: Callable[[str], Any] | None = None,
        trusted: bool = False,
        deadline_of: Callable[[Any], float | None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Reader:
        """The body a :class:`~cachekit.Cache` reads one key with: the value or :data:`~cachekit.MISSING`.

        Built once per cache (and again when its observation hooks come off); never raises. The default is
        :func:`generic_reader` over ``get`` (by default :meth:`get`). A driver may override it with a faster body
        that reads, counts and drops exactly as the generic one does (held to it by the contract suite).

        :param counts: the cache's hit and miss counters.
        :param failed: ``failed(key, exc)``: count and log a failed read; a :class:`~cachekit.errors.CodecError`
            also drops the entry.
        :param decode: the codec's decode (``None``: the driver stores objects, entries are the values).
        :param decode_at: ``decode_at(key, blob)``, used instead of ``decode`` (a signing codec binds each entry
            to its key).
        :param get: the get to read through (a generation store may wrap :meth:`get` with a probe).
        :param trusted: the blobs never leave this process and the codec trusts them as written (the plain
            memory driver): values decoded from an entry's blob may be kept and copied for later hits.
        :param deadline_of: the codec's envelope deadline of a blob, given for an unsigned codec: a driver may
            keep decoded values for its in-process entries if it checks that deadline on each hit.
        :param clock: the cache's clock, for ``deadline_of``.
        """
        return generic_reader(self.get if get is None else get, counts, failed, decode, decode_at)

    def blob_decoder(
        self,
        decode: Callable[[Any], Any] | None,
        *,
        decode_at: Callable[[str, Any], Any] | None = None,
        trusted: bool = False,
        deadline_of: Callable[[Any], float | None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> Callable[[str, Any], Any] | None:
        """``decoded(key, blob)`` for the blobs :meth:`get`, :meth:`aget` and :meth:`get_many` return, used where
        a :class:`~cachekit.Cache` reads without its reader (``aget``/``_aread``, ``get_many``, the single-flight
        re-check); ``None``: ``decode(blob)``. The default is ``decode_at``. A driver whose :meth:`reader`
        answers hits from values decoded earlier returns that decoding here, so every read path serves the same
        copies (the tiered driver: its memory tier's). Arguments as for :meth:`reader`.
        """
        return decode_at

    @abc.abstractmethod
    def get(self, key: str) -> bytes | Missing:
        """Return the blob stored under ``key``, or :data:`~cachekit.MISSING`."""

    @abc.abstractmethod
    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        """Store ``blob`` under ``key`` for ``ttl`` seconds (``None``: no expiry), replacing any old value."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it was present."""

    @abc.abstractmethod
    def clear(self, prefix: str = "") -> int:
        """Remove every key starting with ``prefix`` (all when empty); return how many were removed."""

    @abc.abstractmethod
    def keys(self, prefix: str = "") -> list[str]:
        """List stored keys starting with ``prefix``."""

    def get_with_expiry(self, key: str) -> tuple[bytes, float | None] | Missing:
        """Return ``(blob, expires_at)`` or :data:`~cachekit.MISSING`.

        ``expires_at`` is the entry's deadline as a wall-clock timestamp (the driver's clock), or ``None`` when it
        has no expiry or the driver cannot tell. Multi-tier promotion uses it to copy a hit into faster tiers with
        the *remaining* TTL rather than a fresh one.
        """
        blob = self.get(key)
        if isinstance(blob, Missing):
            return blob
        return blob, None

    def size(self) -> int:
        """Number of stored entries."""
        return len(self.keys())

    def get_many(self, keys: Sequence[str]) -> list[bytes | Missing]:
        """Return one blob or :data:`~cachekit.MISSING` per key, in order."""
        return [self.get(key) for key in keys]

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """Store every ``key -> blob`` of ``items`` with one ``ttl``."""
        for key, blob in items.items():
            self.set(key, blob, ttl)

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove the given keys; return how many were present."""
        return sum(1 for key in keys if self.delete(key))

    def clear_many(self, prefixes: Iterable[str]) -> int:
        """Remove every key starting with any of ``prefixes``; drivers that scan override this to scan once."""
        return sum(self.clear(prefix) for prefix in prefixes if prefix)

    def add(self, key: str, blob: bytes, ttl: float | None = None) -> bool:
        """Store ``blob`` only if ``key`` holds nothing (live); return whether it was stored.

        Atomic where the driver overrides it (memory: under its lock; Redis: ``SET NX``; filesystem: one
        transaction; tiers: on their most shared tier). This default reads then writes, so two concurrent
        callers may both add. A ``ttl`` of 0 stores nothing and returns whether the key was free.
        """
        if not isinstance(self.get(key), Missing):
            return False
        if ttl != 0:
            self.set(key, blob, ttl)
        return True

    def replace(self, key: str, expected: bytes, blob: bytes, ttl: float | None = None) -> bool:
        """Compare-and-set: store ``blob`` only if ``key`` still holds exactly ``expected``; return whether it did.

        Atomic where the driver overrides it (memory, Redis: one Lua call, filesystem, tiers: on their most
        shared tier); this default reads then writes. A ``ttl`` of 0 deletes the key if it still holds
        ``expected``.
        """
        current = self.get(key)
        if isinstance(current, Missing) or (current is not expected and current != expected):
            return False
        if ttl == 0:
            self.delete(key)
        else:
            self.set(key, blob, ttl)
        return True

    def acquire_lock(self, name: str, ttl: float) -> str | None:
        """Try to take the cross-process lock ``name`` for at most ``ttl`` seconds, without waiting.

        Returns a token for :meth:`release_lock`, or ``None`` when another holder has it. Lock entries are not
        listed by :meth:`keys`. Only drivers with ``supports_locks`` implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} has no cross-process locks")

    def release_lock(self, name: str, token: str) -> None:
        """Release ``name`` if ``token`` still holds it (an expired lock taken over by another is left alone)."""
        raise NotImplementedError(f"{type(self).__name__} has no cross-process locks")

    def stats(self) -> dict[str, Any]:
        """Driver-level counters and facts (entries, bytes, evictions ...). Empty by default."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections, files and background work. Safe to call twice."""

    # -- async twins: the defaults run the sync method on cachekit's executor (inline if the driver never blocks)

    async def aget(self, key: str) -> bytes | Missing:
        """Async :meth:`get`."""
        return await run_blocking(self, self.get, key)

    async def aget_with_expiry(self, key: str) -> tuple[bytes, float | None] | Missing:
        """Async :meth:`get_with_expiry`."""
        return await run_blocking(self, self.get_with_expiry, key)

    async def aget_many(self, keys: Sequence[str]) -> list[bytes | Missing]:
        """Async :meth:`get_many`."""
        return await run_blocking(self, self.get_many, keys)

    async def aset(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        """Async :meth:`set`."""
        await run_blocking(self, self.set, key, blob, ttl)

    async def aadd(self, key: str, blob: bytes, ttl: float | None = None) -> bool:
        """Async :meth:`add`."""
        return await run_blocking(self, self.add, key, blob, ttl)

    async def areplace(self, key: str, expected: bytes, blob: bytes, ttl: float | None = None) -> bool:
        """Async :meth:`replace`."""
        return await run_blocking(self, self.replace, key, expected, blob, ttl)

    async def aset_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """Async :meth:`set_many`."""
        await run_blocking(self, self.set_many, items, ttl)

    async def adelete(self, key: str) -> bool:
        """Async :meth:`delete`."""
        return await run_blocking(self, self.delete, key)

    async def adelete_many(self, keys: Iterable[str]) -> int:
        """Async :meth:`delete_many`."""
        return await run_blocking(self, self.delete_many, list(keys))

    async def aclear(self, prefix: str = "") -> int:
        """Async :meth:`clear`."""
        return await run_blocking(self, self.clear, prefix)

    async def aclear_many(self, prefixes: Iterable[str]) -> int:
        """Async :meth:`clear_many`."""
        return await run_blocking(self, self.clear_many, list(prefixes))

    async def akeys(self, prefix: str = "") -> list[str]:
        """Async :meth:`keys`."""
        return await run_blocking(self, self.keys, prefix)

    async def asize(self) -> int:
        """Async :meth:`size`."""
        return await run_blocking(self, self.size)

    async def aclose(self) -> None:
        """Async :meth:`close`: also releases the connections of the running event loop. Safe to call twice."""
        await run_blocking(self, self.close)

    def use_executor(self, executor: BoundedExecutor | None) -> None:
        """Run this driver's blocking async twins on ``executor`` (``None``: the shared default pool)."""
        self.async_executor = executor

    def __enter__(self) -> Driver:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


