"""A Flask-Caching backend on cachekit: ``CACHE_TYPE = "cachekit.flask.CachekitCache"``.

Flask-Caching's ``@cache.cached``, ``@cache.memoize``, template fragments and ``cache.get/set`` then run on any
cachekit driver (memory, filesystem, Redis and Redis Cluster, S3, tiers such as memory in front of Redis), with
cachekit's fail-open reads, circuit breakers and ``cachekit stats``/``keys`` (the backend is a cachekit namespace,
``flask`` by default). E.g.::

    app.config.update(
        SECRET_KEY="...",                                   # entries are signed with a key derived from it
        CACHE_TYPE="cachekit.flask.CachekitCache",
        CACHE_REDIS_URL="redis://127.0.0.1:6379/0",       # Redis; or CACHE_DIR=..., or neither for memory
        # optional: a memory tier in front (the Redis tier takes CACHE_REDIS_URL)
        CACHE_OPTIONS={"drivers": [{"driver": "memory", "ttl": 30}, {"driver": "redis"}]},
    )
    cache = flask_caching.Cache(app)

**Values.** Flask-Caching stores arbitrary objects (responses, exceptions, whatever a memoized function returns),
so values become bytes through a cachelib serializer (``SimpleSerializer``: pickle, as in Flask-Caching's own
backends; ``CACHE_SERIALIZER`` replaces it). Unpickling runs code, so those bytes live only inside a *signed*
cachekit envelope (a keyed BLAKE2b MAC, see :mod:`cachekit.codecs`): a blob is unpickled only after its MAC
matched, and anything else in the store (a raw pickle, an unsigned envelope, one signed with another key) is a
counted miss, never unpickled. The key comes from ``signing_key`` or, through Flask-Caching, is derived from the
app's ``SECRET_KEY`` (``SECRET_KEY_FALLBACKS`` are still accepted on read); a cache shared between processes
without either is refused at start-up. A memory-only cache needs no key (a random one per process: its blobs
never leave it). ``serializer="msgpack"`` or ``"json"`` store plain data with cachekit's safe serializers, and
then need no key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

try:
    from cachelib.serializers import BaseSerializer, SimpleSerializer
    from flask import Flask
    from flask_caching.backends.base import BaseCache
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        f"cachekit.flask needs Flask-Caching ({exc.name!r} is missing): pip install 'cachekit-orm[flask]'",
        name=exc.name,
    ) from exc

from ._options import unknown_options_message
from ._redact import redact
from ._types import Clock, Missing
from .cache import DEFAULT_TTL, Cache
from .drivers import Driver, resolve_driver_class
from .drivers.memory import MemoryDriver
from .drivers.null import NullDriver
from .errors import CacheError, ConfigurationError
from .stats import CacheStats

__all__ = ["CachekitCache"]

_ABSENT = object()
_FAILED = object()
#: Cross-process locks of add/inc/dec: held at most this long (a crashed holder's lock expires), waited for a
#: little longer.
_LOCK_TTL, _LOCK_WAIT = 5.0, 6.0
_LOCK_PREFIX = "flask-rmw/"
#: Drivers whose blobs never leave the process: a random signing key per process is enough for them.
_PROCESS_LOCAL = frozenset({"memory", "null"})
#: Options of ``config`` that belong to this backend's top level, where they are checked together.
_TOP_LEVEL_ONLY = ("serializer", "deserializer", "signing_key", "verify_keys")
_SAFE_SERIALIZERS = ("msgpack", "json")
_KEY_CONTEXT = b"cachekit.flask.CachekitCache signing key v1"


class _CachelibSerializer:
    """A cachelib serializer inside cachekit's envelope (always a signed one: see :class:`CachekitCache`).

    The codec calls :meth:`loads` only after the blob's MAC matched, so pickle runs only on bytes this app wrote.
    The inner serializer can be replaced (Flask-Caching assigns ``CACHE_SERIALIZER`` after building the backend).
    """

    id = 0  # a user-supplied serializer, in the envelope's terms

    def __init__(self, inner: BaseSerializer) -> None:
        self.inner = inner

    def dumps(self, value: Any) -> bytes:
        out = self.inner.dumps(value)
        if not isinstance(out, (bytes, bytearray)):
            # cachelib's serializers log and return None when they cannot serialize
            raise TypeError(f"{type(self.inner).__name__}.dumps returned {type(out).__name__}, not bytes")
        return bytes(out)

    def loads(self, data: bytes) -> Any:
        return self.inner.loads(data if type(data) is bytes else bytes(data))


class CachekitCache(BaseCache):
    """A Flask-Caching backend (the cachelib ``BaseCache`` contract) stored by a cachekit :class:`~cachekit.Cache`.

    Set ``CACHE_TYPE = "cachekit.flask.CachekitCache"`` (see :meth:`factory` for the settings read), or build it
    directly, like Flask-Caching's own backends. E.g.::

        backend = CachekitCache(default_timeout=300, key_prefix="app:", driver="memory", config={})
        backend.set("k", {"a": 1}, timeout=60)
        backend.get("k")                      # {'a': 1}; None on a miss, an expired entry or a broken backend

    Timeouts are seconds (``int``, ``float`` or ``timedelta``); ``0`` keeps an entry until it is deleted, a
    negative one removes it. Reads fail open (a backend failure or an unreadable entry is a miss, counted in
    :meth:`stats`); ``set``/``add``/``delete`` return ``False`` when the backend fails. ``add``, ``inc`` and
    ``dec`` hold a lock for their read and write: this process's, and the driver's cross-process lock where it
    has one (Redis, tiers with Redis), so they are atomic across processes there (not on the filesystem).

    :param default_timeout: seconds an entry lives when ``set`` gets no timeout (``CACHE_DEFAULT_TIMEOUT``).
    :param key_prefix: prepended to every key (``CACHE_KEY_PREFIX``); ``clear()`` removes only keys under it.
    :param driver: a cachekit driver name (``"memory"``, ``"filesystem"``, ``"redis"``, ``"s3"``, ``"null"``),
        a ``"module:Class"`` path or a :class:`~cachekit.drivers.Driver`, as for :class:`~cachekit.Cache`.
    :param config: the driver's options and cachekit's namespace options (compression, ``max_value_bytes``,
        ...), as ``Cache(config=...)`` takes them.
    :param drivers: tiers instead of ``driver``, fastest first, as ``Cache(drivers=...)`` takes them.
    :param namespace: the cachekit namespace (default ``"flask"``): what ``cachekit keys/stats --namespace``
        name.
    :param serializer: a cachelib serializer (default ``SimpleSerializer()``, pickle), always used inside a
        signed envelope; or ``"msgpack"``/``"json"`` for plain data without a key.
    :param signing_key: the key that signs every entry (bytes or str, 16 to 64 bytes). Through
        Flask-Caching it is derived from ``SECRET_KEY`` when not given.
    :param verify_keys: older keys still accepted on read (key rotation).
    :param ignore_delete_many_errors: ``delete_many`` returns the keys it deleted instead of raising
        ``RuntimeError`` for the others (``CACHE_IGNORE_ERRORS``).
    :param promote_on_hit: tiers: copy a lower tier's hit into the faster ones.
    :param strategy: tiers: ``"write-through"`` or ``"lazy-promotion"``.
    :param clock: wall clock for deadlines (``time.time``); tests pass a fake one.
    :param check_on_start: read from every backend once now and raise if one cannot be reached (``True`` by
        default through :meth:`factory`, so an app with a wrong ``CACHE_REDIS_URL`` does not start; ``False``:
        start anyway, reads are misses until the backend is back).
    :param publish_stats: publish this process's hit and miss counters for ``cachekit stats --fleet``
        (``CACHE_OPTIONS['publish_stats']``): ``True`` (every 10 s) or seconds; see :mod:`cachekit.fleet`.
    :raises ConfigurationError: an unknown option, an unknown driver, a pickle serializer on a shared store
        without a signing key, or (``check_on_start``) a backend that cannot be reached.
    """

    def __init__(
        self,
        default_timeout: float | dt.timedelta = 300,
        key_prefix: str = "",
        driver: str | Driver | None = "memory",
        config: Mapping[str, Any] | None = None,
        *,
        drivers: Sequence[Mapping[str, Any] | Driver] | None = None,
        namespace: str = "flask",
        serializer: BaseSerializer | type[BaseSerializer] | str | None = None,
        signing_key: bytes | str | None = None,
        verify_keys: Iterable[bytes | str] = (),
        ignore_delete_many_errors: bool = False,
        promote_on_hit: bool = True,
        strategy: str = "write-through",
        clock: Clock | None = None,
        check_on_start: bool = False,
        publish_stats: bool | float = False,
        **unknown_options: Any,
    ) -> None:
        if unknown_options:
            accepted = [*_OPTION_NAMES]
            raise ConfigurationError(unknown_options_message("CachekitCache", unknown_options, accepted))
        # Not BaseCache.__init__: cachelib warns about float timeouts, which cachekit takes as they are.
        self._default_ttl = _seconds(default_timeout, "default_timeout (CACHE_DEFAULT_TIMEOUT)")
        self.default_timeout = math.ceil(self._default_ttl)  # cachelib's attribute: whole seconds
        self.ignore_delete_many_errors = bool(ignore_delete_many_errors)
        if not isinstance(key_prefix, str):
            raise ConfigurationError(f"key_prefix (CACHE_KEY_PREFIX) must be a string; got {key_prefix!r}")
        self.key_prefix = key_prefix
        if not isinstance(config, (Mapping, type(None))):
            raise ConfigurationError(f"config must be a dict of driver and cachekit options; got {config!r}")
        options = dict(config or {})
        misplaced = sorted(set(options) & set(_TOP_LEVEL_ONLY))
        if misplaced:
            raise ConfigurationError(
                f"config has {misplaced}: give them as CachekitCache options of their own (in CACHE_OPTIONS, "
                "next to 'config'), where the backend checks that pickle is only ever read from signed entries"
            )
        bridge, named = _serializer(serializer)
        if isinstance(driver, str) and drivers is None:
            resolve_driver_class(driver)  # an unknown driver is the first thing to say
        if bridge is not None and signing_key is None:
            if not _process_local(driver, drivers):
                raise ConfigurationError(
                    "CachekitCache stores values with pickle (as Flask-Caching does) and reads them only from "
                    "entries signed with a key, and this cache is shared with other processes: set the Flask "
                    "app's SECRET_KEY (the key is derived from it) or CACHE_OPTIONS['signing_key'] (16-64 bytes), "
                    "or store plain data with CACHE_OPTIONS['serializer'] = 'msgpack'"
                )
            signing_key = secrets.token_bytes(32)  # the blobs never leave this process
        if signing_key is not None:
            options["signing_key"] = signing_key
            options["verify_keys"] = list(verify_keys)
        elif verify_keys:
            raise ConfigurationError("verify_keys needs a signing_key: pass the current key as signing_key")
        options["serializer"] = bridge if bridge is not None else named
        self._bridge = bridge
        self.cachekit = Cache(
            driver,
            namespace=namespace,
            ttl=self._default_ttl if self._default_ttl > 0 else DEFAULT_TTL,  # set() always passes its own
            config=options,
            drivers=drivers,
            promote_on_hit=promote_on_hit,
            strategy=strategy,
            clock=clock,
            publish_stats=publish_stats,
        )
        #: Whether entries are signed (always with a cachelib serializer).
        self.signed = self.cachekit.codec is not None and self.cachekit.codec.signed
        if bridge is not None and self.cachekit.codec is not None and not self.signed:  # pragma: no cover
            raise ConfigurationError("a pickle serializer without a signed envelope: refused")
        self._lock = threading.RLock()
        if check_on_start:
            self._check_backends()

    # -- Flask-Caching ----------------------------------------------------------------------------------------

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> CachekitCache:
        """Build the backend from a Flask app's settings (Flask-Caching calls this for ``CACHE_TYPE``).

        ``kwargs`` holds ``CACHE_DEFAULT_TIMEOUT``, ``CACHE_IGNORE_ERRORS`` and every ``CACHE_OPTIONS`` entry
        (this class's options: ``driver``, ``config``, ``drivers``, ``namespace``, ``serializer``,
        ``signing_key`` ...). Also read: ``CACHE_KEY_PREFIX``; ``CACHE_REDIS_URL`` (or ``CACHE_REDIS_HOST``/
        ``_PORT``/``_DB``/``_PASSWORD``) for the Redis driver, ``CACHE_DIR`` for the filesystem one, chosen by
        them when ``CACHE_OPTIONS`` names no driver (else memory, bounded by ``CACHE_THRESHOLD`` entries), and
        for tiers in ``drivers`` that name no location; and ``SECRET_KEY`` (with ``SECRET_KEY_FALLBACKS``) for the
        signing key.

        :raises ConfigurationError: naming the setting at fault (``CACHE_OPTIONS``, ``CACHE_ARGS`` ...).
        """
        if args:
            raise ConfigurationError(
                f"CACHE_ARGS={args!r}: CachekitCache takes keyword options only; put them in CACHE_OPTIONS"
            )
        options = dict(kwargs)
        options.setdefault("check_on_start", True)
        options.setdefault("key_prefix", config.get("CACHE_KEY_PREFIX") or "")
        _driver_settings(options, config)
        if "signing_key" not in options:
            secret = app.config.get("SECRET_KEY")
            if secret:
                options["signing_key"] = _derive_key(secret)
                fallbacks = app.config.get("SECRET_KEY_FALLBACKS") or ()
                options.setdefault("verify_keys", [_derive_key(old) for old in fallbacks if old])
        try:
            return cls(**options)
        except ConfigurationError as exc:  # the same class (DriverNotFound stays one), naming the settings
            raise type(exc)(f"CACHE_TYPE 'cachekit.flask.CachekitCache' (CACHE_OPTIONS): {exc}") from exc

    @property
    def serializer(self) -> Any:
        """The serializer in use: a cachelib one (inside signed entries), or cachekit's msgpack/json one.

        Assigning a cachelib serializer (Flask-Caching does for ``CACHE_SERIALIZER``) replaces the pickle one.
        """
        if self._bridge is not None:
            return self._bridge.inner
        return self.cachekit.codec.serializer if self.cachekit.codec is not None else None

    @serializer.setter
    def serializer(self, value: BaseSerializer) -> None:
        if not isinstance(value, BaseSerializer):
            raise ConfigurationError(f"CACHE_SERIALIZER must be a cachelib serializer; got {value!r}")
        if self._bridge is None:
            raise ConfigurationError(
                "CACHE_SERIALIZER needs CachekitCache's default serializer (it stores cachelib serializers' bytes "
                "only in signed entries), but CACHE_OPTIONS['serializer'] chose cachekit's own: drop one of them"
            )
        self._bridge.inner = value

    # -- the cachelib BaseCache contract ---------------------------------------------------------------------

    def get(self, key: str) -> Any:
        """The value under ``key``, or ``None`` (a miss, an expired or unreadable entry, a failing backend)."""
        return self.cachekit.get(self._key(key))

    def has(self, key: str) -> bool:
        """Whether ``key`` holds a readable, unexpired value (a failing backend: ``False``)."""
        return self.cachekit.get(self._key(key), _ABSENT) is not _ABSENT

    def set(self, key: str, value: Any, timeout: float | dt.timedelta | None = None) -> bool:
        """Store ``value`` for ``timeout`` seconds (``None``: the default, ``0``: no expiry, negative: delete).

        Returns ``False`` when the backend failed or the value cannot be serialized (with a warning).
        """
        ttl = self._ttl(timeout)
        full = self._key(key)
        if ttl is not None and ttl < 0:
            self._delete(full)
            return True
        return self.cachekit.set(full, value, ttl=ttl)

    def add(self, key: str, value: Any, timeout: float | dt.timedelta | None = None) -> bool:
        """Like :meth:`set`, but only when ``key`` holds nothing; ``False`` otherwise."""
        with self._exclusive(self._key(key)) as current:
            if current is _FAILED or current is not _ABSENT:
                return False
            return self.set(key, value, timeout)

    def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there (``False`` too when the backend failed)."""
        return self._delete(self._key(key)) is True

    def get_many(self, *keys: str) -> list[Any]:
        """One value (or ``None``) per key, in order, read in one batch where the driver has one."""
        found = self.cachekit.get_many([self._key(key) for key in keys])
        return [found.get(self._key(key)) for key in keys]

    def set_many(self, mapping: Mapping[str, Any], timeout: float | dt.timedelta | None = None) -> list[Any]:
        """Store every ``key -> value``; return the keys stored."""
        return [key for key, value in mapping.items() if self.set(key, value, timeout)]

    def delete_many(self, *keys: str) -> list[Any]:
        """Remove ``keys``; return those now absent (a key that was not there counts as deleted).

        :raises RuntimeError: some keys could not be deleted and ``ignore_delete_many_errors`` is off.
        """
        deleted: list[str] = []
        failed: list[str] = []
        for key in keys:
            (failed if self._delete(self._key(key)) is None else deleted).append(key)
        if failed and not self.ignore_delete_many_errors:
            raise RuntimeError(f"Failed to delete keys: {failed}")
        return deleted

    def clear(self) -> bool:
        """Remove every entry under ``key_prefix`` (the whole namespace without one); whether it worked."""
        errors = self.cachekit.errors
        self.cachekit.clear(self.key_prefix)
        return self.cachekit.errors == errors

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Add ``delta`` to the number under ``key`` (missing: 0) and store it; the new value, ``None`` on failure."""
        with self._exclusive(self._key(key)) as current:
            if current is _FAILED:
                return None
            value = (0 if current is _ABSENT else current or 0) + delta
            return value if self.set(key, value) else None

    def dec(self, key: str, delta: int = 1) -> int | None:
        """Subtract ``delta`` from the number under ``key`` (missing: 0); the new value, ``None`` on failure."""
        return self.inc(key, -delta)

    # -- cachekit --------------------------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """The namespace's counters (hits, misses, errors ...) and its driver's facts."""
        return self.cachekit.stats()

    def close(self) -> None:
        """Close the driver's connections and files."""
        self.cachekit.close()

    def __repr__(self) -> str:
        return f"<CachekitCache namespace={self.cachekit.namespace!r} driver={self.cachekit.driver!r}>"

    @contextlib.contextmanager
    def _exclusive(self, full: str) -> Iterator[Any]:
        """Hold ``full`` for a read-modify-write (``add``, ``inc``, ``dec``); yield its current value.

        Always this process's lock; also the driver's cross-process lock where it has one (Redis, tiers with
        Redis), in which case the value is read from the store that lock guards, past this process's memory
        tier (which may hold a value another process has replaced). Yields ``_ABSENT`` when there is none and
        ``_FAILED`` when the backend failed or the lock could not be had in time.
        """
        with self._lock:
            driver = self.cachekit.driver
            token = self._lock_across_processes(driver, full) if driver.supports_locks else ""
            try:
                yield _FAILED if token is None else self._read_shared(driver, full)
            finally:
                if token:
                    try:
                        driver.release_lock(self._lock_name(full), token)
                    except CacheError:  # it expires by itself
                        pass

    def _lock_across_processes(self, driver: Driver, full: str) -> str | None:
        """The lock's token; ``None`` when the backend failed or another holder kept it past ``_LOCK_WAIT``."""
        deadline = time.monotonic() + _LOCK_WAIT
        pause = 0.001
        while True:
            try:
                token = driver.acquire_lock(self._lock_name(full), _LOCK_TTL)
            except CacheError as exc:
                self.cachekit._backend_failed(full, exc)
                return None
            if token is not None or time.monotonic() >= deadline:
                return token
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _lock_name(self, full: str) -> str:
        return f"{_LOCK_PREFIX}{self.cachekit.namespace}/{full}"

    def _read_shared(self, driver: Driver, full: str) -> Any:
        tiers = getattr(driver, "tiers", None)
        if tiers is None or not driver.supports_locks:
            return self.cachekit.get(full, _ABSENT)
        start = next(index for index, tier in enumerate(tiers) if tier.driver.supports_locks)
        key = self.cachekit._full_key(full)
        try:
            found = driver.get_with_expiry(key, start=start)  # type: ignore[call-arg]
        except CacheError as exc:
            self.cachekit._backend_failed(key, exc)
            return _FAILED
        value = self.cachekit._decoded(key, found if isinstance(found, Missing) else found[0])
        return _ABSENT if isinstance(value, Missing) else value

    def _check_backends(self) -> None:
        driver = self.cachekit.driver
        tiers = getattr(driver, "tiers", None)
        for each in [tier.driver for tier in tiers] if tiers is not None else [driver]:
            try:
                each.get(self.cachekit.prefix + "~start-up-check")
            except CacheError as exc:
                self.close()
                raise ConfigurationError(
                    f"cannot reach the {each.name!r} cache backend {redact(repr(each))} at start-up: {exc}. Check "
                    "its setting (CACHE_REDIS_URL, CACHE_DIR, CACHE_OPTIONS['config'] or ['drivers']), or pass "
                    "CACHE_OPTIONS['check_on_start'] = False to start with a failing cache (reads are misses "
                    "until it is back)"
                ) from exc

    def _key(self, key: str) -> str:
        if not isinstance(key, str):
            raise TypeError(f"cache keys are strings; got {type(key).__name__} {key!r}")
        return self.key_prefix + key

    def _ttl(self, timeout: object) -> float | None:
        seconds = self._default_ttl if timeout is None else _seconds(timeout, "timeout")
        return None if seconds == 0 else seconds

    def _delete(self, full: str) -> bool | None:
        """Whether ``full`` was there; ``None`` when the backend failed (logged and counted, like a read)."""
        try:
            return self.cachekit.delete(full)
        except CacheError as exc:
            self.cachekit._backend_failed(full, exc)
            return None


_OPTION_NAMES = (
    "default_timeout", "key_prefix", "driver", "config", "drivers", "namespace", "serializer", "signing_key",
    "verify_keys", "ignore_delete_many_errors", "promote_on_hit", "strategy", "clock", "check_on_start",
    "publish_stats",
)


def _seconds(value: object, what: str) -> float:
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigurationError(f"{what} must be seconds (int or float) or a timedelta; got {value!r}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ConfigurationError(f"{what} must be a finite number of seconds; got {value!r}")
    return seconds


def _serializer(serializer: object) -> tuple[_CachelibSerializer | None, str | None]:
    """``(bridge, None)`` for a cachelib serializer (the default), ``(None, name)`` for cachekit's safe ones."""
    if serializer is None:
        return _CachelibSerializer(SimpleSerializer()), None
    if isinstance(serializer, type) and issubclass(serializer, BaseSerializer):
        serializer = serializer()
    if isinstance(serializer, BaseSerializer):
        return _CachelibSerializer(serializer), None
    if isinstance(serializer, str) and serializer.strip().lower() in _SAFE_SERIALIZERS:
        return None, serializer.strip().lower()
    raise ConfigurationError(
        f"serializer must be a cachelib serializer (default: SimpleSerializer, pickle in signed entries) or one "
        f"of {list(_SAFE_SERIALIZERS)}; got {serializer!r}"
    )


def _process_local(driver: object, drivers: object) -> bool:
    if drivers is not None:
        return False
    if isinstance(driver, (MemoryDriver, NullDriver)):
        return True
    return isinstance(driver, str) and driver.strip().lower() in _PROCESS_LOCAL


def _derive_key(secret: object) -> bytes:
    """A signing key of its own from the app's secret: a leaked cache key never reveals ``SECRET_KEY``."""
    raw = secret.encode() if isinstance(secret, str) else secret
    if not isinstance(raw, bytes):
        raise ConfigurationError(f"SECRET_KEY must be str or bytes to derive the cache's signing key; got {secret!r}")
    return hmac.new(raw, _KEY_CONTEXT, hashlib.sha256).digest()


def _driver_settings(options: dict[str, Any], config: Mapping[str, Any]) -> None:
    """Fill the driver and its location from Flask-Caching's own settings where ``CACHE_OPTIONS`` left them out.

    Tiers (``drivers``) are given their locations the same way: a Redis tier without one gets ``CACHE_REDIS_URL``
    (or the host settings), a filesystem tier ``CACHE_DIR``; their memory tiers keep their own bounds.
    """
    url, host = config.get("CACHE_REDIS_URL"), config.get("CACHE_REDIS_HOST")
    if "drivers" in options:
        tiers = options["drivers"]
        if isinstance(tiers, Sequence) and not isinstance(tiers, str):
            options["drivers"] = [
                {**tier, "config": _located(str(tier["driver"]), tier.get("config"), config, threshold=False)}
                if isinstance(tier, Mapping) and isinstance(tier.get("driver"), str) else tier
                for tier in tiers
            ]
        return
    if "driver" not in options:
        options["driver"] = "redis" if url or host else "filesystem" if config.get("CACHE_DIR") else "memory"
    if isinstance(options["driver"], str):
        options["config"] = _located(options["driver"], options.get("config"), config, threshold=True)


def _located(driver: str, given: object, config: Mapping[str, Any], *, threshold: bool) -> Any:
    """``given`` (a driver's config) with its location filled from Flask-Caching's settings where it has none."""
    if not isinstance(given, (Mapping, type(None))):
        return given  # Cache(...) reports it
    driver_config = dict(given or {})
    name = driver.strip().lower()
    url, host, directory = config.get("CACHE_REDIS_URL"), config.get("CACHE_REDIS_HOST"), config.get("CACHE_DIR")
    if name == "redis" and not {"url", "host", "client"} & set(driver_config):
        if url:
            driver_config["url"] = url
        elif host:
            driver_config["host"] = host
            for setting, option in (("CACHE_REDIS_PORT", "port"), ("CACHE_REDIS_DB", "db"),
                                    ("CACHE_REDIS_PASSWORD", "password")):
                if config.get(setting) is not None:
                    driver_config[option] = config[setting]
    elif name == "filesystem" and directory and "directory" not in driver_config:
        driver_config["directory"] = str(directory)
    elif name == "memory" and threshold and config.get("CACHE_THRESHOLD") and not {
        "max_size", "max_memory_bytes", "max_memory_percent"
    } & set(driver_config):
        driver_config["max_size"] = config["CACHE_THRESHOLD"]
    return driver_config
