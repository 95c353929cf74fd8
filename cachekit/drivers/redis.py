"""Redis driver: blobs in a Redis server or Redis Cluster, through redis-py.

Every key is stored as ``key_prefix + key``; ``clear`` and ``keys`` find keys with ``SCAN MATCH`` on that
prefix (glob characters escaped) and remove them with ``UNLINK`` in batches, so two applications, or two
cachekit namespaces, share one server safely. ``FLUSHDB``/``FLUSHALL`` are never sent.

Redis owns expiry: ``set`` sends ``SET key blob PX ms``. TTLs are rounded to the nearest millisecond, with
a floor of 1 ms for any positive TTL (a short TTL never becomes "no expiry"); a TTL of exactly ``0`` means
"already expired", so the key is removed instead of stored.

Constructing the driver never talks to the server (redis-py connects on first use; a cluster client is built
on first use), so an application boots while Redis is down and its reads fail open in the
:class:`~cachekit.Cache` above.

E.g.::

    RedisDriver(url="redis://:secret@127.0.0.1:6379/0", key_prefix="myapp:")
    RedisDriver(url="redis+cluster://10.0.0.5:7000")          # Redis Cluster, seeded by one node
    RedisDriver(host="127.0.0.1", port=6380, db=2, password="secret", command_timeout=0.5)

This module is the home of :class:`RedisDriver`'s commands: the breaker path every command takes, reads,
writes, prefix clears and locks. Its connection options are checked and resolved in
:mod:`cachekit.drivers._redis_config`, the per-command helpers live in :mod:`cachekit.drivers._redis_commands`
and the async twins in :mod:`cachekit.drivers.redis_async`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

import redis

from cachekit._redact import redact
from cachekit._types import MISSING, Clock, Missing
from cachekit.breaker import DEFAULT_COOLDOWN, DEFAULT_FAILURES, CircuitBreaker
from cachekit.drivers._limits import bounded_blobs, oversized
from cachekit.drivers._redis_commands import (
    _FAILURES,
    _GLOB_ESCAPES,
    _INTERNAL,
    _LOCK_SEGMENT,
    _RELEASE_SCRIPT,
    _REPLACE_SCRIPT,
    _SCAN_COUNT,
    _UNAVAILABLE,
    _batches,
    _getranges,
    _mget,
    _px,
    _unlink,
    _verdict,
)
from cachekit.drivers._redis_config import Client, reject_options, resolve_connection
from cachekit.drivers.base import NETWORK
from cachekit.drivers.redis_async import AsyncRedisCommands, LoopClients
from cachekit.errors import ConfigurationError, DriverError, DriverUnavailable
from cachekit.generations import GenerationStore

__all__ = ["RedisDriver"]

_T = TypeVar("_T")


class RedisDriver(AsyncRedisCommands):
    """Stores blobs in Redis (``url``, or ``host``/``port``/``db``), or in a Redis Cluster.

    ``url`` accepts ``redis://``, ``rediss://`` (TLS), ``unix://`` and ``redis+cluster://host:port`` (a
    cluster seeded by one node; ``rediss+cluster://`` for TLS). ``cluster=True`` does the same for a plain URL
    or host/port. ``username``/``password`` may be given beside a URL so the secret stays out of it. A ready
    ``client`` (``redis.Redis`` or ``redis.cluster.RedisCluster``, with ``decode_responses=False``) is used
    as is and left open by :meth:`close`; the async methods of such a driver run on cachekit's executor.

    Every method has a native async twin (``await driver.aget(key)``, ``aset``, ``aclear_many`` ...) through
    ``redis.asyncio`` (``redis.asyncio.cluster.RedisCluster`` for a cluster), with one client per event loop
    built from the same options, through the same breaker (see :mod:`cachekit.drivers.redis_async`).

    ``connect_timeout`` and ``command_timeout`` are seconds. ``retries`` is how many times a command is
    retried after a connection error (a connection dropped mid-command); timeouts are retried only with
    ``retry_on_timeout=True``, so a hung server costs one ``command_timeout`` per call.
    ``health_check_interval`` (seconds, 0 = off) pings a connection idle for longer before reusing it.

    Every command goes through a :class:`~cachekit.breaker.CircuitBreaker` (:attr:`breaker`): a timeout opens
    it at once, ``breaker_failures`` (default 3) connection failures in a row open it too; while open, calls
    fail fast with :class:`~cachekit.errors.CircuitOpenError` for ``breaker_cooldown`` seconds (default 2),
    then one probe call decides. Commands of your own go the same way through :meth:`call`.

    Redis bounds its own memory: ``max_bytes`` is rejected, use the server's ``maxmemory`` and
    ``maxmemory-policy``. ``clock`` only dates the deadlines returned by :meth:`get_with_expiry`.

    E.g.::

        driver = RedisDriver(url="redis://127.0.0.1:6379/0", key_prefix="app-cache/")
        driver.set("users/1", b"...", ttl=60)
        driver.get("users/1")            # b"..."
        driver.clear("users/")           # SCAN MATCH app-cache/users/* + UNLINK; other keys untouched
    """

    name = "redis"
    sharing = NETWORK
    _read_limit: int | None = None
    _read_limit_arg = b""

    @property
    def max_read_bytes(self) -> int | None:
        """The most bytes a read fetches of an entry (set by the Caches on this driver; issue 19, item 6)."""
        return self._read_limit

    @max_read_bytes.setter
    def max_read_bytes(self, limit: int | None) -> None:
        self._read_limit = limit
        self._read_limit_arg = b"" if limit is None else str(limit).encode()  # encoded once, not per read
    leaves_orphans = True  # unless the server's maxmemory-policy evicts: entries need a TTL
    supports_locks = True
    blocking = True
    supports_async = True
    _factory: Callable[[], Client]

    def __init__(
        self,
        *,
        url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        ssl: bool = False,
        cluster: bool = False,
        key_prefix: str = "cachekit:",
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
        retries: int = 1,
        retry_on_timeout: bool = False,
        health_check_interval: float = 0.0,
        breaker_failures: int = DEFAULT_FAILURES,
        breaker_cooldown: float = DEFAULT_COOLDOWN,
        client: Client | None = None,
        max_bytes: object = None,
        clock: Clock = time.time,
        **unknown: Any,
    ) -> None:
        reject_options(unknown, max_bytes)
        if not isinstance(key_prefix, str) or not key_prefix:
            raise ConfigurationError(
                "key_prefix must be a non-empty string (e.g. 'myapp:'), so that clear() can never remove "
                f"other applications' keys; got {key_prefix!r}"
            )
        if not callable(clock):
            raise ConfigurationError(f"clock must be a callable returning epoch seconds; got {clock!r}")
        self._prefix = key_prefix
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._owns_client = client is None
        self._client: Client | None = None
        self._aclients: LoopClients | None = None
        connection = resolve_connection(
            client=client, url=url, host=host, port=port, db=db, username=username, password=password, ssl=ssl,
            cluster=cluster, connect_timeout=connect_timeout, command_timeout=command_timeout, retries=retries,
            retry_on_timeout=retry_on_timeout, health_check_interval=health_check_interval,
        )
        self._cluster, self._where = connection.cluster, connection.where
        self.breaker = CircuitBreaker(f"Redis at {self._where}", failures=breaker_failures, cooldown=breaker_cooldown)
        if connection.factories is None:  # a ready client: used as is
            self._client = connection.client
            self.supports_async = False  # no async client to derive from a ready sync one
            return
        self._factory, async_factory = connection.factories
        self._aclients = LoopClients(async_factory)
        # redis.Redis connects on first use, so it is built now (bad URL options fail here); RedisCluster
        # reads the cluster topology in its constructor, so it waits for the first command.
        if not self._cluster:
            self._client = self._factory()

    # -- the one path every command takes -------------------------------------------------------------------

    def call(self, command: Callable[[Client], _T], *, name: str = "command") -> _T:
        """Run ``command(client)`` through the circuit breaker and the driver's error mapping.

        Every method of this driver sends its commands this way; use it for commands of your own (``INCR``,
        ``MGET``, a Lua script, ``PUBLISH``) so that they fail fast while Redis is down and count towards the
        breaker. Keys are yours to prefix (``driver.key_prefix``). ``name`` labels the command in messages.

        E.g.::

            driver.call(lambda client: client.incr(driver.key_prefix + "~gen/users"), name="INCR")

        :raises CircuitOpenError: the breaker is open (Redis failed recently); nothing was sent.
        :raises DriverUnavailable: Redis cannot be reached or timed out.
        :raises DriverError: Redis answered with an error.
        """
        breaker = self.breaker
        probe = breaker.enter()
        try:
            result = command(self._conn())
        except _FAILURES as exc:
            breaker.exit(probe, exc, _verdict(exc))
            raise self._failure(exc, name) from exc
        except BaseException as exc:
            breaker.exit(probe, exc, "ok")
            raise
        breaker.exit(probe)
        return result

    @property
    def key_prefix(self) -> str:
        """The prefix of every key this driver stores (``"cachekit:"`` by default)."""
        return self._prefix

    # -- reads ---------------------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | Missing:
        full = self._prefix + key
        limit = self._read_limit
        if limit is None:
            blob = self.call(lambda client: client.get(full), name="GET")
            return MISSING if blob is None else cast(bytes, blob)  # no decode_responses: always bytes
        # Issue 19, item 6: at most limit + 1 bytes; "" is an absent key (no envelope is empty). Through
        # execute_command with the arguments encoded once: redis-py's getrange() (keys=, int encoding) costs
        # about 14,000 more instructions per call than GET; this costs about 1,000.
        end = self._read_limit_arg
        blob = self.call(lambda client: cast(Any, client).execute_command("GETRANGE", full, b"0", end), name="GETRANGE")
        if not blob:
            return MISSING
        if len(blob) > limit:
            raise oversized(key, limit)
        return cast(bytes, blob)

    def get_with_expiry(self, key: str) -> tuple[bytes, float | None] | Missing:
        """GET and PTTL in one round trip; the deadline is ``clock() + pttl``, or ``None`` without expiry."""
        full = self._prefix + key
        limit = self.max_read_bytes

        def get_and_pttl(client: Client) -> list[Any]:
            with client.pipeline(transaction=False) as pipe:
                if limit is None:
                    pipe.get(full)
                else:
                    pipe.getrange(full, 0, limit)  # issue 19, item 6: bounded ("" is an absent key)
                pipe.pttl(full)
                return cast("list[Any]", pipe.execute())

        blob, pttl = self.call(get_and_pttl, name="GET+PTTL")
        # PTTL -2: the key expired between the two commands.
        if not blob or pttl == -2:
            return MISSING
        if limit is not None and len(blob) > limit:
            raise oversized(key, limit)
        return blob, (None if pttl < 0 else self._clock() + pttl / 1000)

    def get_many(self, keys: Sequence[str]) -> list[bytes | Missing]:
        """One MGET (in a cluster, one MGET per hash slot, pipelined per node); with a read limit, one pipelined
        ``GETRANGE`` per key (issue 19: an entry over the limit is refused unread, as by :meth:`get`)."""
        if not keys:
            return []
        prefix = self._prefix
        full = [prefix + key for key in keys]
        limit = self._read_limit
        if limit is None:
            blobs = self.call(lambda client: _mget(client, full), name="MGET")
            return [MISSING if blob is None else blob for blob in blobs]
        end = self._read_limit_arg
        return bounded_blobs(keys, self.call(lambda client: _getranges(client, full, end), name="GETRANGE"), limit)

    def keys(self, prefix: str = "") -> list[str]:
        """The stored keys under ``prefix``, without ``key_prefix``, sorted."""
        start = len(self._prefix)
        raw_keys = self.call(lambda client: list(self._scan(client, prefix)), name="SCAN")
        found = (raw.decode("utf-8", "replace")[start:] for raw in raw_keys)
        return sorted(key for key in found if not key.startswith(_INTERNAL))

    def size(self) -> int:
        """Number of keys under ``key_prefix`` (a full SCAN: O(keys in the database))."""
        internal = tuple((self._prefix + segment).encode() for segment in _INTERNAL)
        return self.call(
            lambda client: sum(1 for raw in self._scan(client, "") if not raw.startswith(internal)), name="SCAN"
        )

    # -- writes --------------------------------------------------------------------------------------------

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        px = _px(ttl)
        full = self._prefix + key
        if px == 0:
            self.call(lambda client: client.unlink(full), name="UNLINK")
        else:
            self.call(lambda client: client.set(full, blob, px=px), name="SET")

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """SET ... PX for every item, pipelined (not a transaction) in batches."""
        px = _px(ttl)
        if px == 0:
            self.delete_many(items)
            return
        prefix = self._prefix

        def set_all(client: Client) -> None:
            for batch in _batches(iter(items.items())):
                with client.pipeline(transaction=False) as pipe:
                    for key, blob in batch:
                        pipe.set(prefix + key, blob, px=px)
                    pipe.execute()

        self.call(set_all, name="SET (pipeline)")

    def delete(self, key: str) -> bool:
        full = self._prefix + key
        return bool(self.call(lambda client: client.unlink(full), name="UNLINK"))

    def delete_many(self, keys: Iterable[str]) -> int:
        """UNLINK in batches (in a cluster, redis-py splits each batch by hash slot)."""
        full = [self._prefix + key for key in keys]
        return self.call(lambda client: _unlink(client, full), name="UNLINK")

    def clear(self, prefix: str = "") -> int:
        """SCAN ``key_prefix + prefix*`` (every primary of a cluster) and UNLINK what it finds."""
        return self.call(lambda client: _unlink(client, self._scan(client, prefix)), name="SCAN+UNLINK")

    def clear_many(self, prefixes: Iterable[str]) -> int:
        """One SCAN over the prefixes' common prefix, removing the keys that start with any of them.

        Empty prefixes are ignored, as in :meth:`Driver.clear_many`.
        """
        wanted = sorted({prefix for prefix in prefixes if prefix})
        if not wanted:
            return 0
        common = os.path.commonprefix(wanted)  # noqa: RUF071 - character-wise is what SCAN MATCH needs
        if len(wanted) == 1:
            return self.clear(common)
        heads = tuple((self._prefix + prefix).encode() for prefix in wanted)
        return self.call(
            lambda client: _unlink(client, (raw for raw in self._scan(client, common) if raw.startswith(heads))),
            name="SCAN+UNLINK",
        )

    def add(self, key: str, blob: bytes, ttl: float | None = None) -> bool:
        """``SET key blob NX PX ms``: atomic across processes; whether it was stored."""
        px = _px(ttl)
        full = self._prefix + key
        if px == 0:
            return bool(self.call(lambda client: not client.exists(full), name="EXISTS"))
        return bool(self.call(lambda client: client.set(full, blob, nx=True, px=px), name="SET NX"))

    def replace(self, key: str, expected: bytes, blob: bytes, ttl: float | None = None) -> bool:
        """Compare-and-set in one Lua call (atomic across processes); whether ``blob`` replaced ``expected``."""
        px = _px(ttl)
        full = self._prefix + key
        args = (expected, blob, "" if px is None else str(px))
        return bool(self.call(lambda client: client.eval(_REPLACE_SCRIPT, 1, full, *args), name="EVAL (replace)"))

    # -- cross-process locks (single-flight between processes) ---------------------------------------------

    def acquire_lock(self, name: str, ttl: float) -> str | None:
        """``SET {key_prefix}~lock/{name} token NX PX ttl``: a token, or ``None`` when another process holds it."""
        token = os.urandom(12).hex()
        full = self._prefix + _LOCK_SEGMENT + name
        px = max(1, round(ttl * 1000))
        taken = self.call(lambda client: client.set(full, token, nx=True, px=px), name="SET NX")
        return token if taken else None

    def release_lock(self, name: str, token: str) -> None:
        """Delete the lock only if ``token`` still holds it (compare-and-delete in one Lua call)."""
        full = self._prefix + _LOCK_SEGMENT + name
        self.call(lambda client: client.eval(_RELEASE_SCRIPT, 1, full, token), name="EVAL (lock release)")

    @property
    def client(self) -> Client:
        """The redis-py client (built now if it was still lazy).

        Commands sent on it directly bypass the circuit breaker: prefer :meth:`call`.
        """
        return self._conn()

    # -- housekeeping ----------------------------------------------------------------------------------------

    def generation_store(self) -> GenerationStore:
        """Counters on the server, bumped by Lua scripts and announced by PUBLISH to every process."""
        from cachekit.generations.redis import RedisGenerations

        return RedisGenerations(self)

    def stats(self) -> dict[str, Any]:
        """Configuration facts and the circuit breaker's state, without I/O and without the password."""
        return {
            "driver": self.name,
            "key_prefix": self._prefix,
            "cluster": self._cluster,
            "url": self._where,
            "breaker": self.breaker.stats(),
        }

    def close(self) -> None:
        """Close the connection pool(s) if this driver created the client. Later calls raise DriverError."""
        with self._lock:
            client, self._client = self._client, None
            self._closed = True
        if client is not None and self._owns_client:
            client.close()
        if self._aclients is not None:
            self._aclients.close_all()

    def __repr__(self) -> str:
        return f"<RedisDriver {self._where} key_prefix={self._prefix!r}>"

    # -- internals -------------------------------------------------------------------------------------------

    def _conn(self) -> Client:
        client = self._client
        return self._connect() if client is None else client

    def _connect(self) -> Client:
        """Build the lazy client; redis-py's errors propagate to :meth:`call`, which maps them."""
        with self._lock:
            if self._client is None:
                if self._closed:
                    raise DriverError(f"{self!r} is closed; create a new driver")
                self._client = self._factory()
            return self._client

    def _scan(self, client: Client, prefix: str) -> Iterator[bytes]:
        pattern = (self._prefix + prefix).translate(_GLOB_ESCAPES) + "*"
        # RedisCluster.scan_iter walks every primary in turn.
        return cast("Iterator[bytes]", client.scan_iter(match=pattern, count=_SCAN_COUNT))

    def _failure(self, exc: Exception, command: str) -> DriverError:
        detail = redact(f"{type(exc).__name__}: {exc}")
        if isinstance(exc, redis.AuthenticationError):  # a ConnectionError to redis-py: the server did answer
            return DriverUnavailable(
                f"Redis at {self._where} refused the credentials ({command}: {detail}); check the username and "
                "password (in the URL, or the 'username'/'password' options)"
            )
        if isinstance(exc, _UNAVAILABLE):
            hint = "check that the server is running and reachable, and the timeouts"
            if self._where.startswith("rediss://") and isinstance(exc, redis.TimeoutError):
                hint = "rediss:// speaks TLS: if the server is plain Redis use redis://; else " + hint
            return DriverUnavailable(f"Redis at {self._where} is unavailable ({command}: {detail}); {hint}")
        return DriverError(f"Redis {command} failed at {self._where}: {detail}")
