"""Building a Redis driver's client: URL parsing and validation, connection options, safe descriptions.

Kept apart from :mod:`cachekit.drivers.redis` (which runs the commands) so each stays readable: this is the
home of everything the driver's constructor resolves, down to :func:`resolve_connection`, which turns its
connection options into a :class:`Connection`. Nothing here talks to a server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias
from urllib.parse import quote, unquote, urlsplit

import redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from cachekit._options import reject_unknown_options
from cachekit._redact import redact
from cachekit.errors import ConfigurationError

Client: TypeAlias = "redis.Redis | RedisCluster"
AsyncClient: TypeAlias = "AsyncRedis | AsyncRedisCluster"

#: URL scheme -> whether it means Redis Cluster.
SCHEMES: Final = {
    "redis": False,
    "rediss": False,
    "unix": False,
    "redis+cluster": True,
    "rediss+cluster": True,
}

DEFAULT_ADDRESS: Final = ("127.0.0.1", 6379, 0, False)
ACCEPTED: Final = (
    "url", "host", "port", "db", "username", "password", "ssl", "cluster", "key_prefix", "connect_timeout",
    "command_timeout", "retries", "retry_on_timeout", "health_check_interval", "breaker_failures",
    "breaker_cooldown", "client", "clock",
)
#: A redis:// URL's path: empty, "/", or "/<database number>".
_DB_PATH: Final = re.compile(r"/?(?:[0-9]+/?)?")


def reject_options(unknown: Mapping[str, Any], max_bytes: object) -> None:
    if max_bytes is not None:
        raise ConfigurationError(
            "max_bytes is not supported by the redis driver: Redis bounds its own memory; set the server's "
            "maxmemory and maxmemory-policy (e.g. allkeys-lru) instead"
        )
    reject_unknown_options("redis driver", unknown, ACCEPTED)


def check_bool(value: object, what: str) -> bool:
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


def connection_options(
    *,
    connect_timeout: float,
    command_timeout: float,
    retries: int,
    retry_on_timeout: bool,
    health_check_interval: float,
    username: str | None,
    password: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The redis-py keyword arguments shared by every way of building a client: (sync, ``redis.asyncio``).

    The two differ only in the retry policy's class (``redis.asyncio`` needs its own ``Retry``).
    """
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ConfigurationError(f"retries must be an int >= 0; got {retries!r}")
    for value, what in ((username, "username"), (password, "password")):
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(f"{what} must be a string or None; got {type(value).__name__}")
    errors: tuple[type[redis.RedisError], ...] = (redis.ConnectionError,)
    if check_bool(retry_on_timeout, "retry_on_timeout"):
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
    async_retry = AsyncRetry(ExponentialBackoff(cap=0.05, base=0.005), retries, supported_errors=errors)
    return options, {**options, "retry": async_retry}


def parse_url(url: object, *, cluster: object) -> tuple[bool, str]:
    """Validate ``url``; return (cluster?, the URL with a scheme redis-py understands)."""
    if not isinstance(url, str):
        raise ConfigurationError(f"url must be a string such as 'redis://127.0.0.1:6379/0'; got {url!r}")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigurationError(
            f"unsupported Redis URL {redact(url)!r}: the scheme must be one of "
            f"{', '.join(s + '://' for s in SCHEMES)}"
        )
    is_cluster = check_bool(cluster, "cluster") or SCHEMES[scheme]
    plain = scheme.removesuffix("+cluster") + url[len(scheme) :]
    try:
        parsed = redis.connection.parse_url(plain)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigurationError(f"invalid Redis URL {redact(url)!r}: {exc}") from exc
    _check_db_path(url, scheme)
    if is_cluster and (scheme == "unix" or parsed.get("db", 0) != 0):
        raise ConfigurationError(
            f"Redis Cluster URL {redact(url)!r} must look like redis+cluster://host:port (database 0; "
            "a cluster has no other databases and no unix sockets)"
        )
    return is_cluster, plain


def _check_db_path(url: str, scheme: str) -> None:
    """redis-py reads ``/13x`` as database 0; cachekit refuses any path that is not a database number."""
    if scheme == "unix":
        return  # the path is the socket; the database goes in ?db=N, which redis-py validates
    try:
        path = unquote(urlsplit(url).path)
    except ValueError:  # pragma: no cover - redis-py's parse_url rejected it already
        path = ""
    if not _DB_PATH.fullmatch(path):
        raise ConfigurationError(
            f"invalid Redis URL {redact(url)!r}: the path {path!r} is not a database number; write "
            "redis://host:6379/13 (or ?db=13), or leave the path out for database 0"
        )


def check_address(*, host: object, port: object, db: object, ssl: object, cluster: bool) -> None:
    if not isinstance(host, str) or not host:
        raise ConfigurationError(f"host must be a non-empty string; got {host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ConfigurationError(f"port must be an int from 1 to 65535; got {port!r}")
    if not isinstance(db, int) or isinstance(db, bool) or db < 0:
        raise ConfigurationError(f"db must be an int >= 0; got {db!r}")
    if cluster and db != 0:
        raise ConfigurationError(f"a Redis Cluster has only database 0; got db={db}")
    check_bool(ssl, "ssl")


def url_factory(url: str, *, cluster: bool, options: dict[str, Any]) -> Callable[[], Client]:
    if cluster:
        return lambda: RedisCluster.from_url(url, **options)
    return lambda: redis.Redis.from_url(url, **options)


def address_factory(
    *, host: str, port: int, db: int, ssl: bool, cluster: bool, options: dict[str, Any]
) -> Callable[[], Client]:
    if cluster:
        return lambda: RedisCluster(host=host, port=port, ssl=ssl, **options)
    return lambda: redis.Redis(host=host, port=port, db=db, ssl=ssl, **options)


def async_url_factory(url: str, *, cluster: bool, options: dict[str, Any]) -> Callable[[], AsyncClient]:
    """The ``redis.asyncio`` twin of :func:`url_factory` (a client is bound to the loop that first uses it)."""
    if cluster:
        return lambda: AsyncRedisCluster.from_url(url, **options)
    return lambda: AsyncRedis.from_url(url, **options)


def async_address_factory(
    *, host: str, port: int, db: int, ssl: bool, cluster: bool, options: dict[str, Any]
) -> Callable[[], AsyncClient]:
    """The ``redis.asyncio`` twin of :func:`address_factory`."""
    if cluster:
        return lambda: AsyncRedisCluster(host=host, port=port, ssl=ssl, **options)
    return lambda: AsyncRedis(host=host, port=port, db=db, ssl=ssl, **options)


def check_client(client: object) -> bool:
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


def describe_client(client: Client) -> str:
    """Where a ready client points, for stats and messages (never its password)."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node()  # type: ignore[no-untyped-call]
        return f"redis+cluster://{node.host}:{node.port}" if node is not None else "redis+cluster://"
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
    return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"


def address_url(
    *, host: str, port: int, db: int, username: str | None, password: str | None, ssl: bool, cluster: bool
) -> str:
    """The URL that host/port options describe, password masked."""
    scheme = ("rediss" if ssl else "redis") + ("+cluster" if cluster else "")
    user = quote(username or "", safe="")
    auth = f"{user}:***@" if password else (f"{user}@" if user else "")
    return f"{scheme}://{auth}{host}:{port}" + ("" if cluster else f"/{db}")


def describe_url(url: str) -> str:
    """A URL for stats and messages: the password masked (userinfo and ``?password=``)."""
    return redact(url)


@dataclass(frozen=True)
class Connection:
    """Where a Redis driver connects: a ready ``client`` used as is, or ``factories`` of new clients.

    ``where`` describes the server for stats and messages (never with the password); ``factories`` is
    ``(sync, redis.asyncio)``, ``None`` for a ready client.
    """

    cluster: bool
    where: str
    client: Client | None = None
    factories: tuple[Callable[[], Client], Callable[[], AsyncClient]] | None = None


def resolve_connection(
    *,
    client: Client | None,
    url: str | None,
    host: str,
    port: int,
    db: int,
    username: str | None,
    password: str | None,
    ssl: bool,
    cluster: bool,
    connect_timeout: float,
    command_timeout: float,
    retries: int,
    retry_on_timeout: bool,
    health_check_interval: float,
) -> Connection:
    """Check a Redis driver's connection options and resolve them: a ready client, a URL, or host/port/db.

    :raises ConfigurationError: for a bad option, or options that contradict each other.
    """
    address_given = (host, port, db, ssl) != DEFAULT_ADDRESS
    if client is not None:
        if url is not None or address_given or username is not None or password is not None:
            raise ConfigurationError(
                "give either a ready client or connection options (url, host, port, db, username, "
                "password, ssl), not both"
            )
        return Connection(check_client(client), describe_client(client), client=client)
    options, async_options = connection_options(
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
        is_cluster, plain_url = parse_url(url, cluster=cluster)
        where = describe_url(url)
        factories = (
            url_factory(plain_url, cluster=is_cluster, options=options),
            async_url_factory(plain_url, cluster=is_cluster, options=async_options),
        )
        return Connection(is_cluster, where, factories=factories)
    is_cluster = check_bool(cluster, "cluster")
    check_address(host=host, port=port, db=db, ssl=ssl, cluster=is_cluster)
    where = address_url(
        host=host, port=port, db=db, username=username, password=password, ssl=ssl, cluster=is_cluster
    )
    factories = (
        address_factory(host=host, port=port, db=db, ssl=ssl, cluster=is_cluster, options=options),
        async_address_factory(host=host, port=port, db=db, ssl=ssl, cluster=is_cluster, options=async_options),
    )
    return Connection(is_cluster, where, factories=factories)
