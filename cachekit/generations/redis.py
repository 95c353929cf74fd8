"""Generations in Redis: counters changed by Lua scripts that also publish every change.

Keys: ``{key_prefix}~gen/{{namespace}}/{scope}`` (the hash tag keeps one namespace's counters in one cluster slot,
so one script reads or bumps them all). A counter that does not exist is created at the server's clock in
microseconds and then only ``INCR``\\ ed, so it is never lower than any value it had before, even after it
expired, was evicted (``allkeys-*`` policies) or the server restarted empty: an old entry can never become
reachable again. Counters expire after ``generation_ttl`` seconds without a bump, which bounds their number.

Every bump is published on ``{key_prefix}~gen`` in the same script. Each process subscribes in a daemon thread;
while the subscription is confirmed, local copies are trusted (a hit costs no extra round trip); when it drops,
local copies are discarded and every read asks Redis (``EVALSHA`` of the read script) until it is back.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from . import GenerationStore
from ._notifications import parse_notification

__all__ = ["RedisGenerations"]

logger = logging.getLogger("cachekit")

_READ = """
local t = redis.call('TIME')
local base = string.format('%d', t[1] * 1000000 + t[2])
local out = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  if not value then
    redis.call('SET', key, base, 'PX', ARGV[1])
    value = base
  end
  out[i] = value
end
return out
"""

_BUMP = """
local t = redis.call('TIME')
local base = string.format('%d', t[1] * 1000000 + t[2])
local lines = {ARGV[3]}
local out = {}
for i, key in ipairs(KEYS) do
  local value
  if redis.call('EXISTS', key) == 1 then
    value = string.format('%d', redis.call('INCR', key))
    redis.call('PEXPIRE', key, ARGV[2])
  else
    value = base
    redis.call('SET', key, base, 'PX', ARGV[2])
  end
  out[i] = value
  lines[#lines + 1] = ARGV[i + 3] .. '\\t' .. value
end
redis.call('PUBLISH', ARGV[1], table.concat(lines, '\\n'))
return out
"""

#: Seconds a counter lives without a bump (its re-creation is safe, see the module docstring).
DEFAULT_GENERATION_TTL = 86_400.0
_RECONNECT_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)
_DRAIN_LIMIT = 10_000
_SWITCH_INTERVAL = 0.001


class RedisGenerations(GenerationStore):
    """The generation store of a :class:`~cachekit.drivers.redis.RedisDriver` (see the module docstring)."""

    ordered = True
    #: Messages on the channel that were not cachekit bumps (counted and dropped; issue 19).
    malformed_notifications = 0

    def __init__(self, driver: Any, *, generation_ttl: float = DEFAULT_GENERATION_TTL) -> None:
        prefix: str = getattr(driver, "key_prefix", None) or driver._prefix
        super().__init__(identity=("redis", getattr(driver, "_where", id(driver)), prefix))
        self._driver = driver
        self._key_base = prefix + "~gen/"
        self.channel = prefix + "~gen"
        self._ttl_ms = str(int(generation_ttl * 1000))
        self._scripts: dict[str, Any] = {}
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # -- the store -------------------------------------------------------------------------------------------

    def read(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        self._ensure_watching()
        keys = [self._key(namespace, s) for s in scopes]
        values = self._run("read", lambda script, client: script(keys=keys, args=[self._ttl_ms], client=client))
        return [int(v) for v in values]

    def bump(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        self._ensure_watching()
        keys = [self._key(namespace, s) for s in scopes]
        args = [self.channel, self._ttl_ms, namespace, *scopes]
        values = [int(v) for v in self._run("bump", lambda script, client: script(keys=keys, args=args, client=client))]
        self._notify(namespace, list(zip(scopes, values, strict=True)))
        return values

    def trusted(self, namespace: str) -> bool:
        self._ensure_watching()
        return self._subscribed.is_set()

    def close(self) -> None:
        self._stop.set()
        self._subscribed.clear()

    # -- internals -------------------------------------------------------------------------------------------

    def _key(self, namespace: str, scope: str) -> str:
        tag = namespace.replace("{", "(").replace("}", ")")
        return f"{self._key_base}{{{tag}}}/{scope}"

    def _run(self, name: str, call: Callable[[Any, Any], Any]) -> Any:
        """Run a script through the driver's breaker and error mapping (a dead Redis fails fast)."""
        def command(client: Any) -> Any:
            script = self._scripts.get(name)
            if script is None:
                script = self._scripts[name] = client.register_script(_READ if name == "read" else _BUMP)
            return call(script, client)

        return self._driver.call(command, name=f"EVALSHA (generations {name})")

    def _ensure_watching(self) -> None:
        if self._thread is not None or self._stop.is_set():
            return
        with self._start_lock:
            if self._thread is None:
                _shorten_switch_interval()
                self._thread = threading.Thread(
                    target=_watch, args=(weakref.ref(self), self._stop), name="cachekit-generations", daemon=True
                )
                self._thread.start()

    def _subscribe(self) -> Any:
        pubsub = self._driver.client.pubsub()
        pubsub.subscribe(self.channel)
        return pubsub

    def _on_subscribed(self) -> None:
        for listener in self.listeners():
            listener.reset()  # bumps made before the subscription may have been missed
        self._subscribed.set()
        for listener in self.listeners():
            listener.resumed()

    def _driver_closed(self) -> bool:
        return bool(getattr(self._driver, "_closed", False))

    def _on_lost(self, exc: BaseException) -> None:
        if self._driver_closed():
            self.close()  # the driver was closed: the subscription ends with it
            return
        was = self._subscribed.is_set()
        self._subscribed.clear()
        for listener in self.listeners():
            listener.reset()
        if was:
            logger.warning("cachekit: lost the generation subscription to Redis (%s); reads ask Redis meanwhile", exc)

    def _on_message(self, data: bytes | str) -> None:
        # Issue 19: a message that does not parse is counted and dropped, never a lost subscription.
        parsed = parse_notification(data)
        if parsed is None:
            self.malformed_notifications += 1
            if self.malformed_notifications == 1:
                logger.warning("cachekit: dropped a malformed message on %r (not a cachekit bump)", self.channel)
            return
        self._notify(*parsed)


def _shorten_switch_interval() -> None:
    """Let the subscriber thread run within about a millisecond of a bump arriving.

    A thread busy with memory-tier hits (pure Python, never blocking) hands the GIL to a thread woken by I/O only
    every switch interval, 5 ms by default, and the subscriber needs it several times per message: under a
    stream of bumps it falls behind and another process's writes are seen ever later (hundreds of ms in the
    two-process test). At 1 ms it keeps up. ``CACHEKIT_KEEP_SWITCH_INTERVAL=1`` leaves the interpreter's setting alone.
    """
    if os.environ.get("CACHEKIT_KEEP_SWITCH_INTERVAL") == "1":
        return
    if sys.getswitchinterval() > _SWITCH_INTERVAL:
        sys.setswitchinterval(_SWITCH_INTERVAL)


def _watch(store_ref: weakref.ref[RedisGenerations], stop: threading.Event) -> None:
    """The subscriber loop: holds the store weakly, so a discarded driver ends it."""
    failures = [0]
    while not stop.is_set():
        store = store_ref()
        if store is None:
            return
        pubsub = None
        try:
            pubsub = store._subscribe()
            del store
            _listen(pubsub, store_ref, stop, failures)
        except Exception as exc:
            store = store_ref()
            if store is not None:
                store._on_lost(exc)
            del store
            stop.wait(_RECONNECT_DELAYS[min(failures[0], len(_RECONNECT_DELAYS) - 1)])
            failures[0] += 1
        finally:
            if pubsub is not None:
                try:
                    pubsub.close()
                except Exception:
                    pass


def _listen(
    pubsub: Any, store_ref: weakref.ref[RedisGenerations], stop: threading.Event, failures: list[int]
) -> None:
    while not stop.is_set():
        message = pubsub.get_message(timeout=0.5)
        store = store_ref()
        if store is None:
            return
        # Drain what is buffered while this thread holds the GIL: a busy hit loop in another thread gives it
        # back only every switch interval (5 ms), so one message per wake-up would fall behind the writers.
        drained = 0
        while message is not None and drained < _DRAIN_LIMIT:
            kind = message.get("type")
            if kind == "subscribe":
                failures[0] = 0
                store._on_subscribed()
            elif kind == "message":
                store._on_message(message["data"])
            drained += 1
            message = pubsub.get_message(timeout=0.0)
        del store
