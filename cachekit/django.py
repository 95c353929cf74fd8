"""A Django cache backend on cachekit: ``CACHES = {"default": {"BACKEND": "cachekit.django.CachekitCache"}}``.

E.g.::

    CACHES = {
        "default": {
            "BACKEND": "cachekit.django.CachekitCache",
            "LOCATION": "redis://127.0.0.1:6379/0",    # or an absolute directory, or a name / nothing for memory
            "TIMEOUT": 300,
            "OPTIONS": {"config": {"key_prefix": "myapp:"}},
        },
    }

``LOCATION`` picks the driver as Django users expect: a ``redis://``/``rediss://`` URL is Redis
(``redis+cluster://`` a Redis Cluster), an absolute path is the filesystem (diskcache), a name (or nothing) is
memory, and memory caches with the same ``LOCATION`` share one store in the process (as ``LocMemCache`` does).
``OPTIONS`` takes cachekit's own options:

* ``driver``: any cachekit driver name (``"memory"``, ``"filesystem"``, ``"redis"``, ``"s3"``, a
  ``"module:Class"`` path), overriding what ``LOCATION`` implies;
* ``config``: that driver's options and the namespace's (``enable_compression``, ``max_value_bytes`` ...);
* ``tiers``: a multi-tier cache, fastest first (``[{"driver": "memory", "ttl": 30}, {"driver": "redis"}]``); a
  Redis tier without ``url``/``host`` takes ``LOCATION``;
* ``namespace`` (default ``"django"``), ``signing_key``, ``compression`` (``True`` or ``"gzip"``/``"zlib"``/
  ``"zstd"``), ``breaker`` (``{"failures": 5, "cooldown": 30}`` for Redis/S3), ``forever_timeout`` (what
  ``timeout=None`` means on Redis/S3, default 365 days), ``promote_on_hit``, ``publish_stats`` (``True`` or
  seconds: this process's counters for ``cachekit stats --fleet``, :mod:`cachekit.fleet`);
* ``MAX_ENTRIES``/``CULL_FREQUENCY``: Django's culling, honoured on memory and filesystem when given.

**Values and pickle.** Django stores arbitrary picklable objects, so this backend pickles, and only inside a
*signed* cachekit envelope: a keyed BLAKE2b MAC over the whole blob (key derived from ``settings.SECRET_KEY``,
``SECRET_KEY_FALLBACKS`` still accepted for rotation, or ``OPTIONS["signing_key"]``), verified before a byte of
the payload is unpickled. A blob planted in Redis, on disk or in S3 by anyone without the key is a miss and is
never unpickled, so it cannot run code. This module is the only place cachekit unpickles by default.

**Failures.** A backend that fails at run time fails open: ``get`` is a miss, ``set`` stores nothing, ``add`` and
``touch`` return ``False`` (counted in ``stats().errors``, logged once per cause). ``incr``/``decr`` raise (they
must return a number), ``delete``/``delete_many`` raise (a delete that silently failed would leave stale data),
and unpicklable values raise as with Django's own backends. Bad configuration raises ``ImproperlyConfigured``
naming the setting.
"""

from __future__ import annotations

import difflib
import hashlib
import pickle
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured

from ._build import NAMESPACE_OPTIONS, check_reclaimable
from ._redact import redact
from ._types import MISSING, Missing
from .cache import Cache
from .codecs import Codec
from .drivers import Driver, create_driver
from .errors import CacheError, DriverError, SerializationError

__all__ = ["CachekitCache"]

#: The keys ``OPTIONS`` accepts.
OPTION_NAMES = (
    "driver", "config", "tiers", "namespace", "signing_key", "compression", "breaker", "forever_timeout",
    "promote_on_hit", "MAX_ENTRIES", "CULL_FREQUENCY", "publish_stats",
)
#: ``timeout=None`` on a backend that needs a TTL (Redis, S3): stored for this long (365 days).
DEFAULT_FOREVER_TIMEOUT = 365 * 24 * 3600.0
_CAS_ATTEMPTS = 100  # incr/touch retries when another writer changed the entry in between
_NAMESPACE_ONLY = frozenset({"serializer", "deserializer", "signing_key", "verify_keys"})
_LOCAL_DRIVERS = frozenset({"memory", "filesystem", "partition-filesystem", "null"})
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")

# Memory stores by LOCATION, shared by every backend instance of the process (as LocMemCache's are).
_MEMORY: dict[str, tuple[str, Driver]] = {}
# Built namespaces by configuration: Django builds one backend per thread; they share the driver (one connection
# pool, one generation subscriber) while any of them is alive.
_SHARED: weakref.WeakValueDictionary[str, Cache] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


class _SignedPickle:
    """pickle, reached only through a :class:`~cachekit.codecs.Codec` with a signing key (see the module)."""

    id = 3  # pickle's serializer id in cachekit envelopes

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        # Only reached after Codec.decode verified the envelope's MAC: these bytes were written by a key holder.
        return pickle.loads(data)


class CachekitCache(BaseCache):  # type: ignore[misc]  # django ships no type information
    """Django's cache API (``django.core.cache.backends.base.BaseCache``) on a cachekit namespace.

    Built by Django from ``CACHES``; see the module docstring for ``LOCATION`` and ``OPTIONS``. The namespace is
    :attr:`cache` (``cachekit stats``/``keys --namespace django`` see it). Every ``a*`` method is native: Redis
    through ``redis.asyncio``, memory and memory-tier hits inline; the filesystem, S3 and the rest of a tiered
    call on cachekit's executor.
    """

    def __init__(self, location: str | Sequence[str] | None, params: dict[str, Any]) -> None:
        super().__init__(params)
        options = params.get("OPTIONS") or {}
        where = _setting_name(options)
        if not isinstance(options, Mapping):
            raise ImproperlyConfigured(f"{where} must be a dict; got {options!r}")
        _check_option_names(options, where)
        self._culls = "MAX_ENTRIES" in options or "CULL_FREQUENCY" in options
        self.cache: Cache = _shared_cache(_one_location(location, where), options, where)
        self._driver: Driver = self.cache.driver
        codec = self.cache.codec
        assert codec is not None  # built with a serializer: never an objects store
        self._codec: Codec = codec
        self._prefix = self.cache.prefix
        self._culls = self._culls and self._driver.name in _LOCAL_DRIVERS
        self._forever = _forever_timeout(options, self._driver, where)

    # -- helpers -------------------------------------------------------------------------------------------

    def _key(self, key: Any, version: int | None) -> str:
        return self._prefix + str(self.make_and_validate_key(key, version=version))

    def _ttl(self, timeout: Any) -> float | None:
        """Django's timeout as cachekit's TTL: ``None`` forever (capped where the driver needs a TTL), 0 gone."""
        if timeout is DEFAULT_TIMEOUT:
            timeout = self.default_timeout
        if timeout is None:
            return self._forever
        seconds = float(timeout)
        return seconds if seconds > 0 else 0.0

    def _encode(self, full: str, value: Any, ttl: float | None) -> bytes | None:
        """The signed blob of ``value``, bound to its key ``full``; raises what pickle raised; ``None`` when
        the value is over the size cap."""
        try:
            return self._codec.encode(value, ttl, full)
        except SerializationError as exc:
            if exc.__cause__ is not None:
                raise exc.__cause__ from None  # the pickling error, as Django's own backends raise it
            self.cache._backend_failed(None, exc)  # over max_value_bytes: not stored (counted, logged once)
            return None

    def _decode(self, full: str, raw: Any) -> Any:
        return self.cache._decoded(full, raw)

    def _failed(self, full: str | None, exc: Exception) -> None:
        self.cache._backend_failed(full, exc)

    def _remaining(self, raw: bytes) -> float | Missing | None:
        """The TTL left on a stored blob (``None``: none), or MISSING once past its deadline."""
        deadline = Codec.expires_at(raw)
        if deadline is None:
            return None
        left = deadline - self.cache._clock()
        return left if left > 0 else MISSING

    def _cull(self) -> None:
        """Django's culling (``MAX_ENTRIES``/``CULL_FREQUENCY``) on memory and filesystem stores."""
        keys = self._driver.keys(self._prefix)
        if len(keys) < self._max_entries:
            return
        if self._cull_frequency == 0:
            self._driver.clear_many([self._prefix])
        else:
            self._driver.delete_many(keys[: len(keys) // self._cull_frequency])

    def _store(self, full: str, blob: bytes, ttl: float | None) -> None:
        try:
            if self._culls:
                self._cull()
            self._driver.set(full, blob, ttl)
        except Exception as exc:
            self._failed(full, exc)
        else:
            self.cache.sets += 1

    # -- the sync API --------------------------------------------------------------------------------------

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        """The value under ``key``, or ``default``; a broken backend is a miss."""
        read = self.cache._read  # an attribute, not a method: LOAD_METHOD would take its slow path
        value = read(self._key(key, version))
        return default if value is MISSING else value

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        """Store ``value`` for ``timeout`` seconds (``None``: forever; 0 or less: remove the key)."""
        full, ttl = self._key(key, version), self._ttl(timeout)
        blob = self._encode(full, value, ttl)
        if ttl == 0 or blob is None:
            self._discard(full)
            return
        self._store(full, blob, ttl)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Store ``value`` only if ``key`` holds nothing (atomic but on S3); whether it did."""
        full, ttl = self._key(key, version), self._ttl(timeout)
        blob = self._encode(full, value, ttl)
        if blob is None:
            return False
        try:
            if self._culls and ttl != 0:
                self._cull()
            added = self._driver.add(full, blob, ttl)
        except Exception as exc:
            self._failed(full, exc)
            return False
        self.cache.sets += added and ttl != 0
        return added

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        """The values found for ``keys`` (misses left out), in one driver batch (``MGET`` on Redis)."""
        wanted = {self._key(key, version): key for key in keys}
        if not wanted:
            return {}
        fulls = list(wanted)
        try:
            blobs = self._driver.get_many(fulls)
        except Exception as exc:
            self._failed(None, exc)
            return {}
        return self._found(wanted, fulls, blobs)

    def _found(self, wanted: dict[str, Any], fulls: list[str], blobs: Sequence[Any]) -> dict[Any, Any]:
        found: dict[Any, Any] = {}
        for full, raw in zip(fulls, blobs, strict=True):
            value = self._decode(full, raw)
            if value is not MISSING:
                found[wanted[full]] = value
        self.cache.hits += len(found)
        self.cache.misses += len(fulls) - len(found)
        return found

    def set_many(
        self, data: Mapping[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        """Store every item (pipelined on Redis); returns the keys that could not be stored."""
        ttl = self._ttl(timeout)
        blobs, dropped = self._blobs(data, ttl, version)
        if ttl == 0:
            self._discard_many([*blobs, *dropped])
            return []
        self._discard_many(dropped)
        if not blobs:
            return []
        try:
            if self._culls:
                self._cull()
            self._driver.set_many(blobs, ttl)
        except Exception as exc:
            self._failed(None, exc)
            return list(data)
        self.cache.sets += len(blobs)
        return []

    def _blobs(
        self, data: Mapping[Any, Any], ttl: float | None, version: int | None
    ) -> tuple[dict[str, bytes], list[str]]:
        blobs: dict[str, bytes] = {}
        dropped: list[str] = []
        for key, value in data.items():
            full = self._key(key, version)
            blob = self._encode(full, value, ttl)
            if blob is None:
                dropped.append(full)
            else:
                blobs[full] = blob
        return blobs, dropped

    def delete(self, key: Any, version: int | None = None) -> bool:
        """Remove ``key``; whether it was there. Raises :class:`~cachekit.errors.DriverError` if the store fails."""
        removed = self._driver.delete(self._key(key, version))
        self.cache.deletes += removed
        return removed

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        """Remove every key in ``keys`` (one batch). Raises if the store fails."""
        fulls = [self._key(key, version) for key in keys]
        if fulls:
            self.cache.deletes += self._driver.delete_many(fulls)

    def _discard(self, full: str) -> None:
        try:
            self._driver.delete(full)
        except Exception as exc:
            self._failed(full, exc)

    def _discard_many(self, fulls: list[str]) -> None:
        if not fulls:
            return
        try:
            self._driver.delete_many(fulls)
        except Exception as exc:
            self._failed(None, exc)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        """Whether ``key`` holds a live, valid entry."""
        return self.cache._read(self._key(key, version)) is not MISSING

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Give ``key`` a new timeout (compare-and-set: a concurrent write wins); whether the key was there."""
        full, ttl = self._key(key, version), self._ttl(timeout)
        try:
            for _ in range(_CAS_ATTEMPTS):
                raw = self._driver.get(full)
                plan = None if isinstance(raw, Missing) else self._retimed(full, raw, ttl)
                if plan is None or isinstance(raw, Missing):
                    return False
                if self._driver.replace(full, raw, plan, ttl):
                    return True
        except Exception as exc:
            self._failed(full, exc)
        return False

    def _retimed(self, full: str, raw: Any, ttl: float | None) -> bytes | None:
        value = self._decode(full, raw)
        if value is MISSING:
            return None
        return self._codec.encode(value, ttl, full) if ttl != 0 else raw

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """Add ``delta`` to the number under ``key`` atomically (compare-and-set), keeping its expiry.

        :raises ValueError: the key holds nothing. :raises TypeError: the value is not a number.
        """
        full = self._key(key, version)
        for _ in range(_CAS_ATTEMPTS):
            raw = self._driver.get(full)
            if isinstance(raw, Missing):
                raise ValueError(f"Key '{key}' not found")
            plan = self._incremented(key, full, raw, delta)
            if self._driver.replace(full, raw, plan[0], plan[1]):
                return plan[2]
        raise DriverError(f"incr of {key!r} lost {_CAS_ATTEMPTS} races with other writers in a row; retry")

    def _incremented(self, key: Any, full: str, raw: Any, delta: int) -> tuple[bytes, float | None, Any]:
        value = self._decode(full, raw)
        remaining = MISSING if value is MISSING else self._remaining(raw)
        if isinstance(remaining, Missing):
            raise ValueError(f"Key '{key}' not found")
        new = value + delta
        return self._codec.encode(new, remaining, full), remaining, new

    def clear(self) -> None:
        """Remove every entry of this namespace (only its keys: never other applications' on the server)."""
        try:
            self._driver.clear_many([self._prefix])
        except Exception as exc:
            self._failed(None, exc)

    def close(self, **kwargs: Any) -> None:
        """Nothing to do: connections are pooled and shared by every backend instance of the process."""

    # -- the async API: the drivers' own async twins (no thread for Redis or memory) --------------------------

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        """Async :meth:`get` (``redis.asyncio`` on Redis)."""
        value = await self.cache._aread(self._key(key, version))
        return default if value is MISSING else value

    async def aset(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        """Async :meth:`set`."""
        full, ttl = self._key(key, version), self._ttl(timeout)
        blob = self._encode(full, value, ttl)
        try:
            if ttl == 0 or blob is None:
                await self._driver.adelete(full)
                return
            if self._culls:
                self._cull()
            await self._driver.aset(full, blob, ttl)
        except Exception as exc:
            self._failed(full, exc)
        else:
            self.cache.sets += 1

    async def aadd(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Async :meth:`add` (``SET NX`` through ``redis.asyncio``)."""
        full, ttl = self._key(key, version), self._ttl(timeout)
        blob = self._encode(full, value, ttl)
        if blob is None:
            return False
        try:
            if self._culls and ttl != 0:
                self._cull()
            added = await self._driver.aadd(full, blob, ttl)
        except Exception as exc:
            self._failed(full, exc)
            return False
        self.cache.sets += added and ttl != 0
        return added

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        """Async :meth:`get_many`."""
        wanted = {self._key(key, version): key for key in keys}
        if not wanted:
            return {}
        fulls = list(wanted)
        try:
            blobs = await self._driver.aget_many(fulls)
        except Exception as exc:
            self._failed(None, exc)
            return {}
        return self._found(wanted, fulls, blobs)

    async def aset_many(
        self, data: Mapping[Any, Any], timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        """Async :meth:`set_many`."""
        ttl = self._ttl(timeout)
        blobs, dropped = self._blobs(data, ttl, version)
        doomed = [*blobs, *dropped] if ttl == 0 else dropped
        try:
            if doomed:
                await self._driver.adelete_many(doomed)
            if ttl == 0 or not blobs:
                return []
            if self._culls:
                self._cull()
            await self._driver.aset_many(blobs, ttl)
        except Exception as exc:
            self._failed(None, exc)
            return list(data)
        self.cache.sets += len(blobs)
        return []

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        """Async :meth:`delete`."""
        removed = await self._driver.adelete(self._key(key, version))
        self.cache.deletes += removed
        return removed

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        """Async :meth:`delete_many`."""
        fulls = [self._key(key, version) for key in keys]
        if fulls:
            self.cache.deletes += await self._driver.adelete_many(fulls)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        """Async :meth:`has_key`."""
        return await self.cache._aread(self._key(key, version)) is not MISSING

    async def atouch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        """Async :meth:`touch`."""
        full, ttl = self._key(key, version), self._ttl(timeout)
        try:
            for _ in range(_CAS_ATTEMPTS):
                raw = await self._driver.aget(full)
                plan = None if isinstance(raw, Missing) else self._retimed(full, raw, ttl)
                if plan is None or isinstance(raw, Missing):
                    return False
                if await self._driver.areplace(full, raw, plan, ttl):
                    return True
        except Exception as exc:
            self._failed(full, exc)
        return False

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """Async :meth:`incr` (compare-and-set through ``redis.asyncio``)."""
        full = self._key(key, version)
        for _ in range(_CAS_ATTEMPTS):
            raw = await self._driver.aget(full)
            if isinstance(raw, Missing):
                raise ValueError(f"Key '{key}' not found")
            plan = self._incremented(key, full, raw, delta)
            if await self._driver.areplace(full, raw, plan[0], plan[1]):
                return plan[2]
        raise DriverError(f"incr of {key!r} lost {_CAS_ATTEMPTS} races with other writers in a row; retry")

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        try:
            await self._driver.aclear_many([self._prefix])
        except Exception as exc:
            self._failed(None, exc)

    async def aclose(self, **kwargs: Any) -> None:
        """Nothing to do (see :meth:`close`)."""


# -- configuration ---------------------------------------------------------------------------------------------


def _setting_name(options: object) -> str:
    """``CACHES['alias']['OPTIONS']`` for the alias whose OPTIONS dict this is (Django copies params shallowly)."""
    for alias, params in (getattr(settings, "CACHES", None) or {}).items():
        if isinstance(params, Mapping) and params.get("OPTIONS") is options:
            return f"CACHES[{alias!r}]['OPTIONS']"
    return "CACHES[...]['OPTIONS']"


def _one_location(location: str | Sequence[str] | None, where: str) -> str:
    if location is None or isinstance(location, str):
        return location or ""
    servers = list(location)
    if len(servers) == 1 and isinstance(servers[0], str):
        return servers[0]
    raise ImproperlyConfigured(
        f"LOCATION of {where.rpartition('[')[0] or 'CACHES[...]'} lists {len(servers)} servers; CachekitCache takes "
        "one URL, directory or name (for Redis Cluster, one node: 'redis+cluster://host:port')"
    )


def _check_option_names(options: Mapping[str, Any], where: str) -> None:
    for name in options:
        if name not in OPTION_NAMES:
            close = difflib.get_close_matches(str(name), OPTION_NAMES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ImproperlyConfigured(
                f"{where} has an unknown key {name!r}{hint} cachekit.django.CachekitCache accepts {list(OPTION_NAMES)}"
            )


def _signing_keys(options: Mapping[str, Any], where: str) -> tuple[bytes | str, list[bytes]]:
    explicit = options.get("signing_key")
    if explicit is not None:
        return explicit, []
    try:
        secret = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
        secret = None
    if not secret:
        raise ImproperlyConfigured(
            f"cachekit.django.CachekitCache signs its entries with a key derived from SECRET_KEY, which is empty: "
            f"set SECRET_KEY, or give {where}['signing_key'] (16 to 64 bytes)"
        )
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", None) or []
    return _derive(secret), [_derive(old) for old in fallbacks]


def _derive(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    return hashlib.blake2b(raw, digest_size=32, person=b"cachekit-django").digest()


def _driver_plan(location: str, options: Mapping[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    """The driver name and its options from ``LOCATION`` and ``OPTIONS`` (namespace options left in)."""
    config = options.get("config") or {}
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(f"{where}['config'] must be a dict of cachekit options; got {config!r}")
    config = dict(config)
    name = options.get("driver")
    if name is None:
        if location.startswith(_REDIS_SCHEMES):
            name = "redis"
        elif location.startswith("/"):
            name = "filesystem"
        else:
            name = "memory"
    if not isinstance(name, str):
        raise ImproperlyConfigured(f"{where}['driver'] must be a cachekit driver name such as 'redis'; got {name!r}")
    if name == "redis" and location.startswith(_REDIS_SCHEMES):
        if not {"url", "host", "client"} & set(config):
            config["url"] = location
    elif name in ("filesystem", "partition-filesystem") and location:
        config.setdefault("directory", location)
    breaker = options.get("breaker")
    if breaker is not None:
        if not isinstance(breaker, Mapping) or set(breaker) - {"failures", "cooldown"}:
            raise ImproperlyConfigured(
                f"{where}['breaker'] must be {{'failures': int, 'cooldown': seconds}}; got {breaker!r}"
            )
        config.update({f"breaker_{k}": v for k, v in breaker.items()})
    return name, config


def _namespace_config(options: Mapping[str, Any], config: dict[str, Any], where: str) -> dict[str, Any]:
    """Pop the namespace's options out of ``config`` and add signing, compression and the pickle serializer."""
    if config.get("store") == "objects":
        raise ImproperlyConfigured(
            f"{where}['config']: a memory store of live objects (store='objects') is not supported: Django's "
            "backends hand out copies, so values are pickled; leave 'store' out"
        )
    refused = sorted(_NAMESPACE_ONLY & set(config))
    if refused:
        raise ImproperlyConfigured(
            f"{where}['config'] may not set {refused}: values are pickled inside envelopes signed with a key from "
            f"SECRET_KEY; give {where}['signing_key'] to choose the key"
        )
    namespace = {k: config.pop(k) for k in list(config) if k in NAMESPACE_OPTIONS}
    key, fallbacks = _signing_keys(options, where)
    namespace.update(serializer=_SignedPickle(), signing_key=key, verify_keys=fallbacks)
    compression = options.get("compression")
    if compression:
        namespace["enable_compression"] = True
        if isinstance(compression, str):
            namespace["compression"] = compression
    return namespace


def _tier_list(location: str, options: Mapping[str, Any], where: str) -> list[Any]:
    tiers = options["tiers"]
    if not isinstance(tiers, Sequence) or isinstance(tiers, str) or not tiers:
        raise ImproperlyConfigured(f"{where}['tiers'] must be a list of tier dicts, fastest first; got {tiers!r}")
    built = []
    for tier in tiers:
        redis_url = location.startswith(_REDIS_SCHEMES)
        if isinstance(tier, Mapping) and tier.get("driver") == "redis" and redis_url:
            config = dict(tier.get("config") or {})
            if not {"url", "host", "client"} & set(config):
                config["url"] = location
            built.append({**tier, "config": config})
        else:
            built.append(tier)
    return built


def _shared_cache(location: str, options: Mapping[str, Any], where: str) -> Cache:
    fingerprint = repr((location, sorted((str(k), repr(v)) for k, v in options.items()), _signing_keys(options, where)))
    with _LOCK:
        cache = _SHARED.get(fingerprint)
        if cache is None:
            cache = _build(location, options, where)
            _SHARED[fingerprint] = cache
        return cache


def _build(location: str, options: Mapping[str, Any], where: str) -> Cache:
    namespace = options.get("namespace", "django")
    promote = options.get("promote_on_hit", True)
    try:
        if "tiers" in options:
            if "driver" in options:
                raise ImproperlyConfigured(f"{where}: give 'driver' or 'tiers', not both")
            ns_config = _namespace_config(options, dict(options.get("config") or {}), where)
            cache = Cache(drivers=_tier_list(location, options, where), namespace=namespace, config=ns_config,
                          promote_on_hit=promote, publish_stats=options.get("publish_stats", False))
        else:
            name, config = _driver_plan(location, options, where)
            ns_config = _namespace_config(options, config, where)
            driver: str | Driver = _memory_store(location, config, where) if name == "memory" else name
            merged = ns_config if name == "memory" else {**config, **ns_config}
            cache = Cache(driver, namespace=namespace, config=merged, publish_stats=options.get("publish_stats", False))
    except CacheError as exc:
        raise ImproperlyConfigured(f"{where}: {exc}") from exc
    _check_reachable(cache, location, where)
    return cache


def _memory_store(location: str, config: dict[str, Any], where: str) -> Driver:
    """The process's memory store for ``location``, built on first use; same LOCATION, same store."""
    driver_options = {k: config.pop(k) for k in list(config) if k not in NAMESPACE_OPTIONS}
    wanted = repr(sorted((k, repr(v)) for k, v in driver_options.items()))
    known = _MEMORY.get(location)
    if known is not None and known[0] == wanted:
        return known[1]
    driver = create_driver("memory", **driver_options)  # checks the options first: their error is the clearer one
    if known is not None:
        raise ImproperlyConfigured(
            f"{where}['config']: the memory store LOCATION={location!r} already exists with other driver options "
            f"({known[0] if known[0] != '[]' else 'none'}); caches sharing a LOCATION share one store: give them "
            "the same options or another LOCATION"
        )
    _MEMORY[location] = (wanted, driver)
    return driver


def _check_reachable(cache: Cache, location: str, where: str) -> None:
    """Ping Redis once at start-up, so a wrong URL is one clear error rather than a silent miss on every get."""
    drivers = [tier.driver for tier in getattr(cache.driver, "tiers", ())] or [cache.driver]
    for driver in drivers:
        client = getattr(driver, "client", None) if driver.name == "redis" else None
        if client is None:
            continue
        try:
            client.ping()
        except Exception as exc:
            raise ImproperlyConfigured(
                f"{where}: cannot reach Redis ({redact(location) or 'its config'}): {redact(exc)}; start it or fix "
                "LOCATION / OPTIONS['config']"
            ) from exc


def _forever_timeout(options: Mapping[str, Any], driver: Driver, where: str) -> float | None:
    """``timeout=None``: no expiry where the store bounds itself (memory, filesystem); else a long TTL."""
    try:
        check_reclaimable(None, driver)
    except CacheError:
        pass
    else:
        return None
    value = options.get("forever_timeout", DEFAULT_FOREVER_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ImproperlyConfigured(f"{where}['forever_timeout'] must be seconds > 0; got {value!r}")
    return float(value)

