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
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, TypeAlias, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, RedisClusterException
from redis.retry import Retry

from cachekit._types import MISSING, Clock, Missing, normalize_ttl
from cachekit.drivers.base import Driver
from cachekit.errors import ConfigurationError, DriverError, DriverUnavailable

__all__ = ["RedisDriver"]

#: Lock entries live under ``{key_prefix}~lock/`` (cachekit keys never start with ``~``) and expire on their own.
_LOCK_SEGMENT = "~lock/"
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

Client: TypeAlias = "redis.Redis | RedisCluster"

#: URL scheme -> whether it means Redis Cluster.
_SCHEMES: Final = {
    "redis": False,
    "rediss": False,
    "unix": False,
    "redis+cluster": True,
    "rediss+cluster": True,
}
#: Keys per UNLINK / pipeline, so one call never blocks the server on a huge argument list.
_BATCH: Final = 500
#: SCAN's COUNT hint: keys examined per round trip.
_SCAN_COUNT: Final = 1000
_GLOB_ESCAPES: Final = str.maketrans({char: "\\" + char for char in "\\*?[]"})
#: The server (or cluster) cannot be reached: the caller fails open and may retry later.
_UNAVAILABLE: Final = (redis.ConnectionError, redis.TimeoutError, ClusterDownError, RedisClusterException)
#: Everything redis-py raises for a failed command.
_FAILURES: Final = (redis.RedisError, RedisClusterException)


class RedisDriver(Driver):
    """Stores blobs in Redis (``url``, or ``host``/``port``/``db``), or in a Redis Cluster.

    ``url`` accepts ``redis://``, ``rediss://`` (TLS), ``unix://`` and ``redis+cluster://host:port`` (a
    cluster seeded by one node; ``rediss+cluster://`` for TLS). ``cluster=True`` does the same for a plain URL
    or host/port. ``username``/``password`` may be given beside a URL so the secret stays out of it. A ready
    ``client`` (``redis.Redis`` or ``redis.cluster.RedisCluster``, with ``decode_responses=False``) is used
    as is and left open by :meth:`close`.

    ``connect_timeout`` and ``command_timeout`` are seconds. ``retries`` is how many times a command is
    retried after a connection error (a connection dropped mid-command); timeouts are retried only with
    ``retry_on_timeout=True``, so a hung server costs one ``command_timeout`` per call.
    ``health_check_interval`` (seconds, 0 = off) pings a connection idle for longer before reusing it.

    Redis bounds its own memory: ``max_bytes`` is rejected, use the server's ``maxmemory`` and
    ``maxmemory-policy``. ``clock`` only dates the deadlines returned by :meth:`get_with_expiry`.

    E.g.::

        driver = RedisDriver(url="redis://127.0.0.1:6379/0", key_prefix="app-cache/")
        driver.set("users/1", b"...", ttl=60)
        driver.get("users/1")            # b"..."
        driver.clear("users/")           # SCAN MATCH app-cache/users/* + UNLINK; other keys untouched
    """

    name = "redis"
    supports_locks = True
    blocking = True
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
        client: Client | None = None,
        max_bytes: object = None,
        clock: Clock = time.time,
        **unknown: Any,
    ) -> None:
        _reject_options(unknown, max_bytes)
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
        address_given = (host, port, db, ssl) != _DEFAULT_ADDRESS
        if client is not None:
            if url is not None or address_given or username is not None or password is not None:
                raise ConfigurationError(
                    "give either a ready client or connection options (url, host, port, db, username, "
                    "password, ssl), not both"
                )
            self._cluster = _check_client(client)
            self._where = _describe_client(client)
            self._client = client
            return
        options = _connection_options(
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            retries=retries,
            retry_on_timeout=retry_on_timeout,
            health_check_interval=health_check_interval,
            username=username,
            password=password,
        )
        if url is not None:
            if address_given:
                raise ConfigurationError(
                    "give either url or host/port/db/ssl, not both (username and password may go with a url)"
                )
            self._cluster, plain_url = _parse_url(url, cluster=cluster)
            self._where = _redact_url(url)
            self._factory = _url_factory(plain_url, cluster=self._cluster, options=options)
        else:
            self._cluster = _check_bool(cluster, "cluster")
            _check_address(host=host, port=port, db=db, ssl=ssl, cluster=self._cluster)
            self._where = _address_url(
                host=host,
                port=port,
                db=db,
                username=username,
                password=password,
                ssl=ssl,
                cluster=self._cluster,
            )
            self._factory = _address_factory(
                host=host, port=port, db=db, ssl=ssl, cluster=self._cluster, options=options
            )
        # redis.Redis connects on first use, so it is built now (bad URL options fail here); RedisCluster
        # reads the cluster topology in its constructor, so it waits for the first command.
        if not self._cluster:
            self._client = self._factory()

    # -- reads ---------------------------------------------------------------------------------------------

    def get(self, key: str) -> bytes | Missing:
        client = self._client
        if client is None:
            client = self._connect()
        try:
            blob = client.get(self._prefix + key)
        except _FAILURES as exc:
            raise self._failure(exc, "GET") from exc
        return MISSING if blob is None else cast(bytes, blob)  # no decode_responses: always bytes

    def get_with_expiry(self, key: str) -> tuple[bytes, float | None] | Missing:
        """GET and PTTL in one round trip; the deadline is ``clock() + pttl``, or ``None`` without expiry."""
        full = self._prefix + key
        try:
            with self._conn().pipeline(transaction=False) as pipe:
                pipe.get(full)
                pipe.pttl(full)
                blob, pttl = pipe.execute()
        except _FAILURES as exc:
            raise self._failure(exc, "GET+PTTL") from exc
        # PTTL -2: the key expired between the two commands.
        if blob is None or pttl == -2:
            return MISSING
        return blob, (None if pttl < 0 else self._clock() + pttl / 1000)

    def get_many(self, keys: Sequence[str]) -> list[bytes | Missing]:
        """One MGET (in a cluster, one MGET per hash slot, pipelined per node)."""
        if not keys:
            return []
        prefix = self._prefix
        full = [prefix + key for key in keys]
        client = self._conn()
        try:
            blobs = _mget(client, full)
        except _FAILURES as exc:
            raise self._failure(exc, "MGET") from exc
        return [MISSING if blob is None else blob for blob in blobs]

    def keys(self, prefix: str = "") -> list[str]:
        """The stored keys under ``prefix``, without ``key_prefix``, sorted."""
        start = len(self._prefix)
        try:
            found = [raw.decode("utf-8", "replace")[start:] for raw in self._scan(prefix)]
        except _FAILURES as exc:
            raise self._failure(exc, "SCAN") from exc
        return sorted(key for key in found if not key.startswith(_LOCK_SEGMENT))

    def size(self) -> int:
        """Number of keys under ``key_prefix`` (a full SCAN: O(keys in the database))."""
        lock_prefix = (self._prefix + _LOCK_SEGMENT).encode()
        try:
            return sum(1 for raw in self._scan("") if not raw.startswith(lock_prefix))
        except _FAILURES as exc:
            raise self._failure(exc, "SCAN") from exc

    # -- writes --------------------------------------------------------------------------------------------

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        px = _px(ttl)
        full = self._prefix + key
        client = self._conn()
        try:
            if px == 0:
                client.unlink(full)
            else:
                client.set(full, blob, px=px)
        except _FAILURES as exc:
            raise self._failure(exc, "SET") from exc

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """SET ... PX for every item, pipelined (not a transaction) in batches."""
        px = _px(ttl)
        if px == 0:
            self.delete_many(items)
            return
        prefix = self._prefix
        client = self._conn()
        try:
            for batch in _batches(iter(items.items())):
                with client.pipeline(transaction=False) as pipe:
                    for key, blob in batch:
                        pipe.set(prefix + key, blob, px=px)
                    pipe.execute()
        except _FAILURES as exc:
            raise self._failure(exc, "SET (pipeline)") from exc

    def delete(self, key: str) -> bool:
        try:
            return bool(self._conn().unlink(self._prefix + key))
        except _FAILURES as exc:
            raise self._failure(exc, "UNLINK") from exc

    def delete_many(self, keys: Iterable[str]) -> int:
        """UNLINK in batches (in a cluster, redis-py splits each batch by hash slot)."""
        prefix = self._prefix
        try:
            return self._unlink(prefix + key for key in keys)
        except _FAILURES as exc:
            raise self._failure(exc, "UNLINK") from exc

    def clear(self, prefix: str = "") -> int:
        """SCAN ``key_prefix + prefix*`` (every primary of a cluster) and UNLINK what it finds."""
        try:
            return self._unlink(self._scan(prefix))
        except _FAILURES as exc:
            raise self._failure(exc, "SCAN+UNLINK") from exc

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
        try:
            return self._unlink(raw for raw in self._scan(common) if raw.startswith(heads))
        except _FAILURES as exc:
            raise self._failure(exc, "SCAN+UNLINK") from exc

    # -- cross-process locks (single-flight between processes) ---------------------------------------------

    def acquire_lock(self, name: str, ttl: float) -> str | None:
        """``SET {key_prefix}~lock/{name} token NX PX ttl``: a token, or ``None`` when another process holds it."""
        token = os.urandom(12).hex()
        try:
            taken = self._conn().set(self._prefix + _LOCK_SEGMENT + name, token, nx=True, px=max(1, round(ttl * 1000)))
        except _FAILURES as exc:
            raise self._failure(exc, "SET NX") from exc
        return token if taken else None

    def release_lock(self, name: str, token: str) -> None:
        """Delete the lock only if ``token`` still holds it (compare-and-delete in one Lua call)."""
        try:
            self._conn().eval(_RELEASE_SCRIPT, 1, self._prefix + _LOCK_SEGMENT + name, token)
        except _FAILURES as exc:
            raise self._failure(exc, "EVAL (lock release)") from exc

    @property
    def client(self) -> Client:
        """The redis-py client (built now if it was still lazy), e.g. for a lock or a server command of your own."""
        return self._conn()

    # -- housekeeping ----------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Configuration facts, without I/O and without the password."""
        return {"driver": self.name, "key_prefix": self._prefix, "cluster": self._cluster, "url": self._where}

    def close(self) -> None:
        """Close the connection pool(s) if this driver created the client. Later calls raise DriverError."""
        with self._lock:
            client, self._client = self._client, None
            self._closed = True
        if client is not None and self._owns_client:
            client.close()

    def __repr__(self) -> str:
        return f"<RedisDriver {self._where} key_prefix={self._prefix!r}>"

    # -- internals -------------------------------------------------------------------------------------------

    def _conn(self) -> Client:
        client = self._client
        return self._connect() if client is None else client

    def _connect(self) -> Client:
        with self._lock:
            if self._client is None:
                if self._closed:
                    raise DriverError(f"{self!r} is closed; create a new driver")
                try:
                    self._client = self._factory()
                except _FAILURES as exc:
                    raise self._failure(exc, "connect") from exc
            return self._client

    def _scan(self, prefix: str) -> Iterator[bytes]:
        pattern = (self._prefix + prefix).translate(_GLOB_ESCAPES) + "*"
        # RedisCluster.scan_iter walks every primary in turn.
        return self._conn().scan_iter(match=pattern, count=_SCAN_COUNT)

    def _unlink(self, keys: Iterable[str | bytes]) -> int:
        client = self._conn()
        # UNLINK after SCAN is safe: SCAN still returns every key present for the whole iteration.
        return sum(client.unlink(*batch) for batch in _batches(iter(keys)))

    def _failure(self, exc: Exception, command: str) -> DriverError:
        if isinstance(exc, _UNAVAILABLE):
            return DriverUnavailable(
                f"Redis at {self._where} is unavailable ({command}: {type(exc).__name__}: {exc}); check that "
                "the server is running and reachable, and the timeouts (reads fail open meanwhile)"
            )
        return DriverError(f"Redis {command} failed at {self._where}: {type(exc).__name__}: {exc}")


# -- construction helpers ---------------------------------------------------------------------------------

_DEFAULT_ADDRESS: Final = ("127.0.0.1", 6379, 0, False)
_ACCEPTED: Final = (
    "url, host, port, db, username, password, ssl, cluster, key_prefix, connect_timeout, command_timeout, "
    "retries, retry_on_timeout, health_check_interval, client, clock"
)


def _reject_options(unknown: Mapping[str, Any], max_bytes: object) -> None:
    if max_bytes is not None:
        raise ConfigurationError(
            "max_bytes is not supported by the redis driver: Redis bounds its own memory; set the server's "
            "maxmemory and maxmemory-policy (e.g. allkeys-lru) instead"
        )
    if unknown:
        raise ConfigurationError(
            f"unknown redis driver option(s): {', '.join(sorted(unknown))}; accepted options are {_ACCEPTED}"
        )


def _check_bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{what} must be True or False; got {value!r}")
    return value


def _check_seconds(value: object, what: str, *, allow_zero: bool = False) -> float:
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value > 0 or (allow_zero and value == 0))
    ):
        return float(value)
    floor = ">= 0" if allow_zero else "> 0"
    raise ConfigurationError(f"{what} must be a finite number of seconds {floor}; got {value!r}")


def _connection_options(
    *,
    connect_timeout: float,
    command_timeout: float,
    retries: int,
    retry_on_timeout: bool,
    health_check_interval: float,
    username: str | None,
    password: str | None,
) -> dict[str, Any]:
    """The redis-py keyword arguments shared by every way of building a client."""
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ConfigurationError(f"retries must be an int >= 0; got {retries!r}")
    for value, what in ((username, "username"), (password, "password")):
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"{what} must be a string or None; got {type(value).__name__}")
    errors: tuple[type[Exception], ...] = (redis.ConnectionError,)
    if _check_bool(retry_on_timeout, "retry_on_timeout"):
        errors += (redis.TimeoutError,)
    interval = _check_seconds(health_check_interval, "health_check_interval", allow_zero=True)
    options: dict[str, Any] = {
        "socket_connect_timeout": _check_seconds(connect_timeout, "connect_timeout"),
        "socket_timeout": _check_seconds(command_timeout, "command_timeout"),
        "health_check_interval": interval,
        # redis-py's default retries 10 times with backoff, i.e. seconds per call while the server is down,
        # where a cache should fail fast. One quick retry still rides out a connection dropped mid-command.
        "retry": Retry(ExponentialBackoff(cap=0.05, base=0.005), retries, supported_errors=errors),
    }
    if username is not None:
        options["username"] = username
    if password is not None:
        options["password"] = password
    return options


def _parse_url(url: object, *, cluster: object) -> tuple[bool, str]:
    """Validate ``url``; return (cluster?, the URL with a scheme redis-py understands)."""
    if not isinstance(url, str):
        raise ConfigurationError(f"url must be a string such as 'redis://127.0.0.1:6379/0'; got {url!r}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"unsupported Redis URL {_redact_url(url)!r}: the scheme must be one of "
            f"{', '.join(s + '://' for s in _SCHEMES)}"
        )
    is_cluster = _check_bool(cluster, "cluster") or _SCHEMES[scheme]
    plain = scheme.removesuffix("+cluster") + url[len(scheme) :]
    try:
        parsed = redis.connection.parse_url(plain)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {_redact_url(url)!r}: {exc}") from exc
    if is_cluster and (scheme == "unix" or parsed.get("db", 0) != 0):
        raise ConfigurationError(
            f"Redis Cluster URL {_redact_url(url)!r} must look like redis+cluster://host:port (database 0; "
            "a cluster has no other databases and no unix sockets)"
        )
    return is_cluster, plain


def _check_address(*, host: object, port: object, db: object, ssl: object, cluster: bool) -> None:
    if not isinstance(host, str) or not host:
        raise ConfigurationError(f"host must be a non-empty string; got {host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ConfigurationError(f"port must be an int from 1 to 65535; got {port!r}")
    if not isinstance(db, int) or isinstance(db, bool) or db < 0:
        raise ConfigurationError(f"db must be an int >= 0; got {db!r}")
    if cluster and db != 0:
        raise ConfigurationError(f"a Redis Cluster has only database 0; got db={db}")
    _check_bool(ssl, "ssl")


def _url_factory(url: str, *, cluster: bool, options: dict[str, Any]) -> Callable[[], Client]:
    if cluster:
        return lambda: RedisCluster.from_url(url, **options)
    return lambda: redis.Redis.from_url(url, **options)


def _address_factory(
    *, host: str, port: int, db: int, ssl: bool, cluster: bool, options: dict[str, Any]
) -> Callable[[], Client]:
    if cluster:
        return lambda: RedisCluster(host=host, port=port, ssl=ssl, **options)
    return lambda: redis.Redis(host=host, port=port, db=db, ssl=ssl, **options)


def _check_client(client: object) -> bool:
    """Validate a ready client; return whether it is a cluster client."""
    if not isinstance(client, (redis.Redis, RedisCluster)):
        raise ConfigurationError(
            f"client must be a synchronous redis.Redis or redis.cluster.RedisCluster; got {type(client).__name__}"
        )
    if client.get_encoder().decode_responses:
        raise ConfigurationError(
            "the given Redis client has decode_responses=True, but the driver stores bytes: pass a client "
            "created with decode_responses=False"
        )
    return isinstance(client, RedisCluster)


def _describe_client(client: Client) -> str:
    """Where a ready client points, for stats and messages (never its password)."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node()  # type: ignore[no-untyped-call]
        return f"redis+cluster://{node.host}:{node.port}" if node is not None else "redis+cluster://"
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def _address_url(
    *, host: str, port: int, db: int, username: str | None, password: str | None, ssl: bool, cluster: bool
) -> str:
    """The URL that host/port options describe, password masked."""
    scheme = ("rediss" if ssl else "redis") + ("+cluster" if cluster else "")
    user = quote(username or "", safe="")
    auth = f"{user}:***@" if password else (f"{user}@" if user else "")
    return f"{scheme}://{auth}{host}:{port}" + ("" if cluster else f"/{db}")


def _redact_url(url: str) -> str:
    """``url`` with its password (in the userinfo or the query string) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            userinfo, _, hostinfo = netloc.rpartition("@")
            netloc = f"{userinfo.partition(':')[0]}:***@{hostinfo}"
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="*")
        # Built by hand: urlunsplit drops the empty authority of unix:///path.
        return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
    except ValueError:
        return "<unparsable Redis URL>"


# -- per-call helpers -------------------------------------------------------------------------------------


def _px(ttl: float | None) -> int | None:
    """Milliseconds for ``SET PX``: None = no expiry, 0 = already expired, else at least 1."""
    if ttl is None:
        return None
    seconds = normalize_ttl(ttl)
    assert seconds is not None
    return 0 if seconds == 0 else max(1, round(seconds * 1000))


def _mget(client: Client, keys: list[str]) -> list[bytes | None]:
    if isinstance(client, RedisCluster):
        # The keys spread over hash slots: one MGET per slot, pipelined per node.
        return cast("list[bytes | None]", client.mget_nonatomic(keys))
    return cast("list[bytes | None]", client.mget(keys))


def _batches(items: Iterator[Any]) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
