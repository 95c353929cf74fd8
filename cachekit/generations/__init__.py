"""Generation stores: where the generation number of every invalidation scope lives.

A read's key ends with the generations of the scopes it depends on (:mod:`cachekit.scopes`); a write bumps the
generations of the scopes it touches. The store is the backend's: what every process sharing the cache agrees
on. Each :class:`~cachekit.Cache` keeps a local copy of the generations it has seen
(:class:`~cachekit.generations.view.GenerationView`), which the store keeps current:

* :class:`MemoryGenerations` (memory driver): in-process, authoritative; no I/O.
* :class:`~cachekit.generations.redis.RedisGenerations`: ``INCR`` in a Lua script that also ``PUBLISH``\\ es the
  new values; every process subscribes, so local copies are current within the notification delay; while the
  subscription is down they are not trusted and reads ask Redis.
* :class:`~cachekit.generations.polled.FilesystemGenerations` (an atomic counter in a diskcache of its own in
  the cache directory, never culled) and :class:`~cachekit.generations.polled.TokenGenerations` (S3, or any
  shared driver: a fresh random token per bump): a background poll of one epoch entry per namespace tells a
  process that another one bumped something, and it then forgets what it knew.

:func:`store_for` asks the driver for its store (:meth:`Driver.generation_store
<cachekit.drivers.base.Driver.generation_store>`: each driver brings its own, a multi-tier driver its most shared
tier's; no driver is known here by name), one per driver instance, so every :class:`~cachekit.Cache` on one
driver shares it.
"""

from __future__ import annotations

import abc
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

from ..breaker import CircuitBreaker
from ..errors import ConfigurationError
from ._signing import GenerationSeal

__all__ = ["GenerationListener", "GenerationStore", "MemoryGenerations", "store_for"]

_STORES_LOCK = threading.RLock()
_SIBLINGS: dict[Any, weakref.WeakSet[GenerationStore]] = {}


class GenerationListener(Protocol):
    """What a store tells the local copies of one namespace (the namespace's view)."""

    def changed(self, pairs: Sequence[tuple[str, int]]) -> None:
        """These scopes have these generations now."""

    def reset(self) -> None:
        """Forget every generation known: changes may have been missed."""

    def resumed(self) -> None:
        """The store is reachable and watched again: retry what is pending, trust local copies again."""


class GenerationStore(abc.ABC):
    """The generations of one backend, for every namespace on it."""

    #: True when generations only ever grow (integers), so merging two views of a scope keeps the larger one;
    #: False for random tokens, where only the latest write counts.
    ordered: ClassVar[bool] = True
    #: True when other processes may bump these generations (local copies then need watching).
    shared: ClassVar[bool] = True
    #: True when :meth:`read` is a lookup in this process's memory that neither blocks nor fails: views then
    #: keep no copy of what they read and ask the store at every render (issue 22: their copies of every scope
    #: read grew with the distinct ids read, up to 100,000 scopes per table, whatever the driver's bound).
    reads_in_process: ClassVar[bool] = False

    def __init__(self, identity: Any = None) -> None:
        self._listeners: dict[str, weakref.WeakSet[Any]] = {}
        self._listeners_lock = threading.Lock()
        # Stores of one backend in this process (two drivers on one Redis, bucket or directory) tell each
        # other's listeners of a bump at once, not at the next notification or poll.
        self.identity = identity if identity is not None else id(self)
        #: Seals of the signed namespaces (issue 19): their values and notifications are authenticated.
        self._seals: dict[str, GenerationSeal] = {}
        #: Generation values or notifications refused by their MAC (counted and dropped, never adopted).
        self.refused_values = 0
        with _STORES_LOCK:
            _SIBLINGS.setdefault(self.identity, weakref.WeakSet()).add(self)

    def siblings(self) -> list[GenerationStore]:
        """The stores of the same backend in this process, this one included."""
        with _STORES_LOCK:
            return list(_SIBLINGS.get(self.identity, ()))

    @abc.abstractmethod
    def read(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        """The current generation of each scope (creating it when the backend has none)."""

    @abc.abstractmethod
    def bump(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        """Give each scope a new generation, tell every process, and return the new values."""

    def raise_above(self, namespace: str, scopes: Sequence[str], floors: Sequence[int]) -> list[int]:
        """Give each scope a new generation above its ``floor`` (the highest value this process saw), tell every
        process, and return the new values: after the store's value moved back (a reset server, a counter set
        back by another client), so that every process converges above what any of them served.

        The default is a plain :meth:`bump` (stores whose bumps are fresh values whatever the floor).
        """
        return self.bump(namespace, scopes)

    def probe(self) -> bool:
        """One round trip to the backend now, even while its circuit breaker is open (as the breaker's probe):
        True when it answered. A view with pending bumps calls it every :data:`view.PENDING_PROBE` seconds, so
        a pending invalidation reaches a recovered backend at once, not after the breaker's cool-down (issue 23:
        other processes read the recovered backend as soon as it answers). The default, for stores without a
        breaker of their own, says True: the retry itself is the probe.
        """
        return True

    @staticmethod
    def _probe_through(breaker: CircuitBreaker, call: Callable[[], object]) -> bool:
        """:meth:`probe` for a store behind ``breaker``: ``call()`` now, as the breaker's probe even while it is
        open (:meth:`CircuitBreaker.expedite`); True when it succeeded."""
        breaker.expedite()
        try:
            call()
        except Exception:
            return False
        return True

    def use_seal(self, namespace: str, seal: GenerationSeal | None) -> None:
        """Authenticate ``namespace``'s values and notifications with ``seal`` (a signed namespace)."""
        if seal is not None:
            self._seals[namespace] = seal

    def entries_live(self, namespace: str, seconds: float | None) -> None:  # noqa: B027 - optional hook
        """The longest TTL of ``namespace``'s entries (``None``: no expiry): a store that creates a record on a
        read may give it that TTL, so such records live no longer than the entries they guard (issue 19)."""

    def _refuse(self, what: str) -> None:
        """A value or notification failed its MAC: counted, logged once, dropped."""
        self.refused_values += 1
        if self.refused_values == 1:
            logging.getLogger("cachekit").warning(
                "cachekit: refused %s whose MAC does not match the signing key (not adopted); is another client "
                "writing the generation store?", what,
            )

    def trusted(self, namespace: str) -> bool:
        """Whether local copies are kept current (a live subscription or poll); if not, reads ask the store."""
        return True

    def watch(self, namespace: str, listener: GenerationListener) -> None:
        """Tell ``listener`` of changes to ``namespace`` (held weakly: a discarded Cache just stops listening)."""
        with self._listeners_lock:
            self._listeners.setdefault(namespace, weakref.WeakSet()).add(listener)

    def unwatch(self, namespace: str, listener: GenerationListener) -> None:
        """Stop telling ``listener``."""
        with self._listeners_lock:
            self._listeners.get(namespace, weakref.WeakSet()).discard(listener)

    def listeners(self, namespace: str | None = None) -> list[GenerationListener]:
        """The listeners of one namespace, or of all."""
        with self._listeners_lock:
            if namespace is not None:
                return list(self._listeners.get(namespace, ()))
            return [listener for group in self._listeners.values() for listener in group]

    def _notify(self, namespace: str, pairs: Sequence[tuple[str, int]]) -> None:
        for store in self.siblings():
            for listener in store.listeners(namespace):
                listener.changed(pairs)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop background work (subscriptions, polls)."""


class MemoryGenerations(GenerationStore):
    """Generations of an in-process driver: a dict, authoritative, shared by the Caches on that driver.

    Bounded (issue 19): at most :attr:`limit` scopes are kept; past it the least recently bumped scope is
    forgotten and its namespace's *floor* keeps the highest value forgotten. A scope not kept reads as the
    floor and its next bump goes above it, so no counter ever moves back (an entry stored under an old value
    is never reachable again). A read never creates a scope.
    """

    shared = False
    reads_in_process = True
    #: The most scopes kept, over all namespaces (about 150 bytes each).
    limit = 100_000

    def __init__(self, limit: int | None = None) -> None:
        super().__init__()
        self._values: dict[tuple[str, str], int] = {}
        self._floors: dict[str, int] = {}
        self._lock = threading.Lock()
        if limit is not None:
            self.limit = limit

    def read(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        values, floor = self._values, self._floors.get(namespace, 0)
        return [values.get((namespace, scope), floor) for scope in scopes]

    def bump(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        with self._lock:
            values, floor = self._values, self._floors.get(namespace, 0)
            new = []
            for scope in scopes:
                value = values.pop((namespace, scope), floor) + 1  # re-inserted last: the most recently bumped
                values[(namespace, scope)] = value
                new.append(value)
            while len(values) > self.limit:
                (space, _), forgotten = oldest = next(iter(values.items()))
                del values[oldest[0]]
                if forgotten > self._floors.get(space, 0):
                    self._floors[space] = forgotten
        self._notify(namespace, list(zip(scopes, new, strict=True)))
        return new


_ATTRIBUTE = "_cachekit_generation_store"


def store_for(driver: Any) -> GenerationStore:
    """The generation store of ``driver``: what its ``generation_store()`` gives, else in-process generations
    for a driver whose ``sharing`` is ``"process"``; any other driver is refused (a ConfigurationError).

    One store per driver instance, kept on the driver, so every Cache on it shares subscriptions and values.
    """
    found = driver.__dict__.get(_ATTRIBUTE) if hasattr(driver, "__dict__") else None
    if found is not None:
        return found  # type: ignore[no-any-return]
    with _STORES_LOCK:
        found = driver.__dict__.get(_ATTRIBUTE)
        if found is None:
            found = _build(driver)
            driver.__dict__[_ATTRIBUTE] = found
    return found


def _build(driver: Any) -> GenerationStore:
    own = driver.generation_store() if callable(getattr(driver, "generation_store", None)) else None
    if own is not None:
        if not isinstance(own, GenerationStore):
            raise TypeError(f"{type(driver).__name__}.generation_store() must return a GenerationStore; got {own!r}")
        return own
    if getattr(driver, "sharing", None) == "process":
        return MemoryGenerations()
    raise ConfigurationError(
        f"{type(driver).__name__} (driver {getattr(driver, 'name', '?')!r}) has no generation store: set its class "
        "attribute sharing = 'process' if its entries live in this process only, or give it a generation_store() "
        "that every process sharing its entries shares (see cachekit.drivers.base). In-process generations on a "
        "shared backend would serve entries that another process's write invalidated"
    )
