"""Test helpers for projects that use cachekit: a pytest plugin with two fixtures.

pytest loads this module through the ``pytest11`` entry point ``cachekit``. It defines fixtures only, no
hooks: a test suite that uses neither fixture runs exactly as without it.

* ``cachekit_disabled``: every :class:`~cachekit.Cache` (existing and created during the test) is a null
  cache: decorated reads call through to the function, nothing is stored, ``get`` returns the default.
* ``cachekit_recorder``: a :class:`Recorder` of the hits, misses, sets and invalidations of every cache
  during the test, e.g.::

      def test_rename_invalidates_the_user(cachekit_recorder):
          repo.rename("u1", "Bea")
          assert cachekit_recorder.invalidated("users", id="u1")

Both are also context managers for use outside pytest: :func:`disabled` and :func:`recording`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .events import CacheEvent

__all__ = ["Recorder", "cachekit_disabled", "cachekit_recorder", "disabled", "recording"]

_ANY: Any = object()
_RECORDED = ("hit", "miss", "set", "invalidate")


class Recorder:
    """What every cache did while recording: :attr:`events`, and questions about them."""

    def __init__(self) -> None:
        self.events: list[CacheEvent] = []

    def _of(self, kind: str, resource: str | None, action: str | None, namespace: str | None) -> list[CacheEvent]:
        return [
            e for e in self.events
            if e.kind == kind
            and (resource is None or e.resource == resource)
            and (action is None or e.action == action)
            and (namespace is None or e.namespace == namespace)
        ]

    def hits(self, resource: str | None = None, *, action: str | None = None,
             namespace: str | None = None) -> list[CacheEvent]:
        """The hits recorded (of ``resource``, ``action``, ``namespace`` when given)."""
        return self._of("hit", resource, action, namespace)

    def misses(self, resource: str | None = None, *, action: str | None = None,
               namespace: str | None = None) -> list[CacheEvent]:
        """The misses recorded (a miss is a call of the decorated function)."""
        return self._of("miss", resource, action, namespace)

    def sets(self, resource: str | None = None, *, action: str | None = None,
             namespace: str | None = None) -> list[CacheEvent]:
        """The entries stored."""
        return self._of("set", resource, action, namespace)

    def invalidations(self, namespace: str | None = None) -> list[CacheEvent]:
        """The invalidation events (each with the ``scopes`` it bumped)."""
        return [e for e in self.events if e.kind == "invalidate" and (namespace is None or e.namespace == namespace)]

    def invalidated(self, resource: str, *, id: Any = _ANY, namespace: str | None = None) -> bool:
        """Whether a write invalidated ``resource`` (with ``id=``: that item's reads) while recording.

        True when a bump reached the item's scope, the whole resource, or the whole namespace
        (:mod:`cachekit.scopes`); without ``id``, any scope of the resource counts.
        """
        from .scopes import NAMESPACE_SCOPE, Invalidation, invalidation_scopes, resource_of

        wanted: set[str] = set()
        for case_sensitive in (True, False):
            whole = invalidation_scopes(Invalidation(resource, whole=True), case_sensitive=case_sensitive)
            wanted.update(whole)
            if id is not _ANY:
                wanted.add(invalidation_scopes(Invalidation(resource, ids=[id]), case_sensitive=case_sensitive)[-1])
        names = {scope for scope in wanted if "/" not in scope}
        for event in self.invalidations(namespace):
            for scope in event.scopes:
                if scope == NAMESPACE_SCOPE or scope in wanted:
                    return True
                if id is _ANY and resource_of(scope) in names:
                    return True
        return False

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.events.clear()

    def __repr__(self) -> str:
        counts = {kind: sum(1 for e in self.events if e.kind == kind) for kind in _RECORDED}
        return f"<Recorder {counts}>"


@contextlib.contextmanager
def recording() -> Iterator[Recorder]:
    """Record every cache's hits, misses, sets and invalidations inside the ``with`` block."""
    from .events import subscribe_all

    recorder = Recorder()
    subscriptions = [subscribe_all(kind, recorder.events.append) for kind in _RECORDED]
    try:
        yield recorder
    finally:
        for subscription in subscriptions:
            subscription.unsubscribe()


def _null_methods() -> dict[str, Callable[..., Any]]:
    from ._types import MISSING

    def _null_read(key: str) -> Any:
        return MISSING

    def _install_read(self: Any) -> None:
        self._read = _null_read

    def _write(self: Any, key: str, value: Any, ttl: Any, max_payload: Any) -> bool:
        return False

    def _load(self: Any, key: str, action: str, loader: Callable[[], Any], ttl: Any = None) -> Any:
        return loader()

    async def _aload(self: Any, key: str, action: str, loader: Callable[[], Any], ttl: Any = None) -> Any:
        return await loader()

    def get_many(self: Any, keys: Any) -> dict[str, Any]:
        return {}

    return {"_install_read": _install_read, "_write": _write, "_load": _load, "_aload": _aload, "get_many": get_many}


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Make every :class:`~cachekit.Cache` a null cache inside the ``with`` block (reads call through)."""
    from . import events
    from .cache import Cache

    saved = {name: vars(Cache).get(name, _ANY) for name in _null_methods()}  # _load, _aload: inherited
    try:
        for name, method in _null_methods().items():
            setattr(Cache, name, method)
        _reinstall_reads(events)
        yield
    finally:
        for name, method in saved.items():
            if method is _ANY:
                delattr(Cache, name)
            else:
                setattr(Cache, name, method)
        _reinstall_reads(events)


def _reinstall_reads(events: Any) -> None:
    """Every live cache reads with the ``_install_read`` in force (the null one inside :func:`disabled`); hooked
    caches wrap the class methods in force."""
    for cache in events.caches():
        cache._install_read()
    events.reinstall()


@pytest.fixture
def cachekit_disabled() -> Iterator[None]:
    """Every cachekit ``Cache`` is a null cache during the test: decorated reads always call the function."""
    with disabled():
        yield


@pytest.fixture
def cachekit_recorder() -> Iterator[Recorder]:
    """A :class:`Recorder` of every cache's hits, misses, sets and invalidations during the test."""
    with recording() as recorder:
        yield recorder
