"""A third-party backend in one file: a dict "server" that several driver instances share, with its generations.

This is what adding a backend takes (``docs/architecture.md``, "How to add a backend"): a :class:`Driver`
subclass that stores blobs, says who shares its entries (``sharing``), and brings the store of its generation
counters (``generation_store``); then one registry line::

    register_driver("shared-dict", "tests.unit.example_shared_driver:SharedDictDriver")

Two instances built with the same ``server`` name stand for two processes on one server.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from cachekit import MISSING
from cachekit.drivers.base import NETWORK, Driver
from cachekit.generations import GenerationStore

__all__ = ["SERVERS", "SharedDictDriver", "SharedDictGenerations"]


class Server:
    """What the backend's server holds: entries and generation counters."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.generations: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()


SERVERS: dict[str, Server] = {}


class SharedDictGenerations(GenerationStore):
    """Generation counters on the server; a bump is an atomic increment there, announced to its siblings."""

    def __init__(self, server: str) -> None:
        super().__init__(identity=("shared-dict", server))  # stores of one server tell each other of a bump
        self.server = SERVERS[server]

    def read(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        return [self.server.generations.get((namespace, scope), 0) for scope in scopes]

    def bump(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        with self.server.lock:
            new = []
            for scope in scopes:
                value = self.server.generations.get((namespace, scope), 0) + 1
                self.server.generations[(namespace, scope)] = value
                new.append(value)
        self._notify(namespace, list(zip(scopes, new, strict=True)))
        return new


class SharedDictDriver(Driver):
    """Blobs on a shared dict server (no expiry of its own: the envelope's deadline hides old entries)."""

    name = "shared-dict"
    sharing = NETWORK
    blocking = False

    def __init__(self, server: str = "default", **_: Any) -> None:
        self.server_name = server
        self.server = SERVERS.setdefault(server, Server())

    def generation_store(self) -> GenerationStore:
        return SharedDictGenerations(self.server_name)

    def get(self, key: str) -> Any:
        return self.server.entries.get(key, MISSING)

    def set(self, key: str, blob: bytes, ttl: float | None = None) -> None:
        self.server.entries[key] = blob

    def delete(self, key: str) -> bool:
        return self.server.entries.pop(key, None) is not None

    def clear(self, prefix: str = "") -> int:
        doomed = [key for key in self.server.entries if key.startswith(prefix)]
        for key in doomed:
            del self.server.entries[key]
        return len(doomed)

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(key for key in self.server.entries if key.startswith(prefix))
