"""Generations in Redis: counters changed by Lua scripts that also publish every change.

Keys: ``{key_prefix}~gen/{{namespace}}/{scope}`` (the hash tag keeps one namespace's counters in one cluster slot,
so one script reads or bumps them all). A bump creates a missing counter at the server's clock in microseconds
(above the namespace's top) and then only ``INCR``\\ s it, so it is never lower than any value it had before,
even after it expired, was evicted (``allkeys-*`` policies) or the server restarted empty: an old entry can never
become reachable again. Counters expire after ``generation_ttl`` seconds without a bump, which bounds their number.

An unsigned read creates no counter (issue 19): a scope never bumped reads as its namespace's floor, kept with a
Bloom filter of the counters ever bumped in the namespace's record ``.../~floor`` (see ``_NAMESPACE``), so a
counter that was bumped and then lost is told from one never bumped. Signed namespaces create no counter on a
read either: that record is not authenticated (a deleted counter whose bits were cleared would read as the floor
its pre-bump entries were stored under), so a signed scope without a counter reads as its *group*'s
(:mod:`._groups`): one of 1024 sealed group counters per namespace, the only keys a signed read creates. A signed
bump raises the scope's group to a fresh value and gives the counter that value, in one script, so a deleted
counter never reads as an older value.

Every bump is published on ``{key_prefix}~gen`` in the same script. Each process subscribes in a daemon thread;
while the subscription is confirmed, local copies are trusted (a hit costs no extra round trip); when it drops,
local copies are discarded and every read asks Redis (``EVALSHA`` of the read script) until it is back.

The subscriber's socket is read under a lock by whoever gets there first (:class:`_Inbox`): the subscriber
thread, woken by ``poll``, or a thread reading through a Cache on this store (:meth:`RedisGenerations.probed`),
which pulls the socket itself (one non-blocking ``recv``) when a millisecond has passed since the last pull. A
process busy with memory-tier hits thus hears of a bump at its next read, whatever the interpreter's switch
interval and however late the OS schedules the subscriber thread on a loaded machine.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import select
import socket
import ssl
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import DriverError
from . import GenerationStore
from ._groups import groups_of
from ._notifications import REFUSED, parse_notification
from ._signing import GenerationSeal
from ._values import COUNTER_LIMIT, private_value

__all__ = ["RedisGenerations"]

logger = logging.getLogger("cachekit")

# A counter cachekit wrote: digits only, below COUNTER_LIMIT = 2^53 (exact in Lua). Anything else (junk, a
# number near 2^63, which INCR refuses, a hash) is another client's, and a bump overwrites it at the clock
# (issue 19).
#
# Unsigned namespaces have a record of their own, KEYS[1] = ``.../~floor``: 60 bytes (the floor, the top and the
# number of counters marked, 20 digits each) then a Bloom filter of the counters ever bumped (4 bits per counter,
# 2^20 bits: 128 KiB). A read of an absent counter whose bits are not all set reads as the floor and writes
# nothing (issue 19: no record for a scope never bumped); one whose bits are set was bumped and since lost
# (expired, evicted), and restarts above the top, as a missing counter always did. The record and its counters
# share a hash slot; losing the record loses the filter and the floor together, and it restarts at the server
# clock, above every value given.
_NAMESPACE = """
local function counter_of(found)
  if type(found) ~= 'string' or not string.match(found, '^[1-9]%d*$') then
    return nil
  end
  local number = tonumber(found)
  if number < 9007199254740992 then
    return number
  end
  return nil
end

local function header(floor, top, marked)
  return string.format('%020d%020d%020d', floor, top, marked)
end

local function number_at(head, start)
  local digits = string.match(string.sub(head, start, start + 19), '^0*(%d*)$')
  if digits == '' then
    return 0
  end
  return counter_of(digits)
end

-- The floor, top and count of the namespace record; an absent or unreadable one starts over at the clock.
local function namespace_of(key, base, ttl)
  local head = redis.pcall('GETRANGE', key, 0, 59)
  if type(head) == 'string' and #head == 60 then
    local floor, top, marked = number_at(head, 1), number_at(head, 21), number_at(head, 41)
    if floor and top and marked and floor > 0 then
      return floor, top, marked
    end
  end
  redis.call('SET', key, header(base, base, 0), 'PX', ttl)
  return base, base, 0
end

local function bits_of(name)
  local h = redis.sha1hex(name)
  local out = {}
  for j = 0, 3 do
    out[j + 1] = 480 + tonumber(string.sub(h, 5 * j + 1, 5 * j + 5), 16)
  end
  return out
end

local function was_bumped(key, name)
  for _, bit in ipairs(bits_of(name)) do
    if redis.call('GETBIT', key, bit) == 0 then
      return false
    end
  end
  return true
end

-- After a bump: mark the counters (counting those it created), store the top, refresh the record; past
-- 100,000 counters marked (1% false positives) the filter is cleared and the floor moves above the top.
local function bumped(key, names, created, floor, top, marked, ttl, base)
  for _, name in ipairs(names) do
    for _, bit in ipairs(bits_of(name)) do
      redis.call('SETBIT', key, bit, 1)
    end
  end
  marked = marked + created
  if marked > 100000 then
    redis.call('SET', key, header(math.max(base, top + 1), top, 0), 'PX', ttl)
  else
    redis.call('SETRANGE', key, 0, header(floor, top, marked))
    redis.call('PEXPIRE', key, ttl)
  end
end
"""

# KEYS: the namespace record, then the counters; ARGV: the TTL of a restarted counter, of the record.
_READ = _NAMESPACE + """
local t = redis.call('TIME')
local base = t[1] * 1000000 + t[2]
local floor, top = namespace_of(KEYS[1], base, ARGV[2])
local out = {}
for i = 2, #KEYS do
  local value = redis.pcall('GET', KEYS[i])
  if type(value) == 'table' then
    value = ''  -- not a string (another client's hash, list...): read as junk, overwritten by the next bump
  elseif not value then
    if was_bumped(KEYS[1], KEYS[i]) then
      value = string.format('%d', math.max(base, top + 1))
      redis.call('SET', KEYS[i], value, 'PX', ARGV[1])
    else
      value = string.format('%d', floor)
    end
  end
  out[i - 1] = value
end
return out
"""

# A bump: each counter goes to the highest of its value + 1 and the caller's floor + 1 (issue 19: a counter set
# back, or restarted empty, below what a process saw; a plain bump passes floors of 0), and the new values are
# published. A missing or junk counter restarts above the namespace's top. KEYS: the namespace record, then the
# counters; ARGV: channel, TTL, namespace, the scopes, then the floors.
_RAISE = _NAMESPACE + """
local t = redis.call('TIME')
local base = t[1] * 1000000 + t[2]
local floor, top, marked = namespace_of(KEYS[1], base, ARGV[2])
local n = #KEYS - 1
local lines = {ARGV[3]}
local out = {}
local names = {}
local created = 0
for i = 2, #KEYS do
  local key = KEYS[i]
  local current = counter_of(redis.pcall('GET', key))
  local value = math.max(current and current + 1 or math.max(base, top + 1), tonumber(ARGV[i + 2 + n]) + 1)
  redis.call('SET', key, string.format('%d', value), 'PX', ARGV[2])
  top = math.max(top, value)
  names[#names + 1] = key
  if not current then
    created = created + 1
  end
  out[i - 1] = string.format('%d', value)
  lines[#lines + 1] = ARGV[i + 2] .. '\\t' .. out[i - 1]
end
bumped(KEYS[1], names, created, floor, top, marked, ARGV[2], base)
redis.call('PUBLISH', ARGV[1], table.concat(lines, '\\n'))
return out
"""

# Signed namespaces (issue 19): values are "{value}.{mac}", sealed by the client (the key never reaches Redis).
# A read creates no counter for a scope: an absent one reads as its group's (:mod:`._groups`), and only an absent
# group (or one not a string) is created, with the sealed value the client proposes: at most GROUPS keys per
# namespace. KEYS: the scopes' counters (ARGV[2] of them), then their groups; ARGV: the groups' TTL, the number
# of scopes, each scope's group (its position among the groups), then the proposed sealed value of each group.
# Answers the texts of the counters ("" for an absent one), then of the groups ("" for one no absent counter
# needed).
_SIGNED_READ = """
local n = tonumber(ARGV[2])
local out = {}
local wanted = {}
for i = 1, n do
  local value = redis.pcall('GET', KEYS[i])
  if type(value) == 'table' or value == '' then
    value = '~'  -- not a string, or empty: refused by its MAC, then overwritten
  elseif not value then
    wanted[tonumber(ARGV[2 + i])] = true
    value = ''
  end
  out[i] = value
end
for j = 1, #KEYS - n do
  local value = ''
  if wanted[j] then
    value = redis.pcall('GET', KEYS[n + j])
    if type(value) ~= 'string' then  -- absent (never created, expired, deleted) or not a string: fresh
      value = ARGV[2 + n + j]
      redis.call('SET', KEYS[n + j], value, 'PX', ARGV[1])
    end
  end
  out[n + j] = value
end
return out
"""

# A compare-and-set on the counters' numbers (a bump sets the scopes' groups and counters in one script). A
# counter whose text is not a sealed value's shape, or whose number is implausibly large, is answered like one
# ahead: the client opens it, and only a valid MAC makes it go above the number; junk (issue 19) is named back in
# ARGV (after "=") and overwritten if it is still the same. ARGV per counter: its sealed text, its notification
# line ("" for a group: group raises are not published), the number the present value must be below, the junk.
# Answers: index, "=" .. text of a present counter ("" of an absent one), for every counter not set.
_SIGNED_SET = """
local n = #KEYS
local behind = {}
for i, key in ipairs(KEYS) do
  local found = redis.pcall('GET', key)
  if type(found) == 'table' then
    found = '~'
  end
  local seen = found and ('=' .. found) or ''
  local junk = ARGV[i + 3 + 3 * n]
  local ahead
  if junk ~= '' then
    ahead = seen ~= junk
  elseif found then
    local number = string.match(found, '^(%d+)%.%x+$')
    ahead = not number or #number > 18 or tonumber(ARGV[i + 3 + 2 * n]) <= tonumber(number)
  end
  if ahead then
    behind[#behind + 1] = i
    behind[#behind + 1] = seen
  end
end
if #behind > 0 then
  return behind
end
local lines = {ARGV[3]}
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 3], 'PX', ARGV[2])
  if ARGV[i + 3 + n] ~= '' then
    lines[#lines + 1] = ARGV[i + 3 + n]
  end
end
if #lines > 1 then
  redis.call('PUBLISH', ARGV[1], table.concat(lines, '\\n'))
end
return behind
"""

_SCRIPTS = {"read": _READ, "raise": _RAISE, "signed_read": _SIGNED_READ, "signed_set": _SIGNED_SET}

_READ_SHA = hashlib.sha1(_READ.encode()).hexdigest()  # the script's name in Redis

_SIGNED_ATTEMPTS = 5
#: An unsigned namespace's record: its floor, top and Bloom filter of bumped counters (see _NAMESPACE).
_RECORD = "~floor"
_LARGEST = (1 << 63) - 1
#: Seconds a counter lives without a bump (its re-creation is safe, see the module docstring).
DEFAULT_GENERATION_TTL = 86_400.0
_RECONNECT_DELAYS = (0.05, 0.1, 0.25, 0.5, 1.0)
_WAIT = 0.5
_BUFFER = 1 << 16
#: A reading thread pulls the subscription's socket at most this often (seconds): one non-blocking ``recv``.
PULL_INTERVAL = 0.001


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
        self._generation_ttl = generation_ttl
        # Issue 19, item 5: a counter an unsigned read creates (a lost one restarted) lives as long as the
        # namespace's entries, not a day. Signed reads create only group counters (at most GROUPS, generation_ttl).
        self._read_ttl_ms: dict[str, str] = {}
        self._scripts: dict[str, Any] = {}
        self._subscribed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._inbox: _Inbox | None = None

    # -- the store -------------------------------------------------------------------------------------------

    def read(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        self._ensure_watching()
        keys = [self._key(namespace, s) for s in scopes]
        seal = self._seals.get(namespace)
        if seal is not None:
            return self._signed_read(namespace, scopes, keys, seal)
        keys.insert(0, self._key(namespace, _RECORD))
        args = [self._read_ttl_ms.get(namespace, self._ttl_ms), self._ttl_ms]
        values = self._run("read", lambda script, client: script(keys=keys, args=args, client=client))
        return [_counter(v) for v in values]

    async def aread(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        """:meth:`read` through ``redis.asyncio`` (the driver's async client and breaker): never blocks the loop."""
        self._ensure_watching()
        driver = self._driver
        if getattr(driver, "_aclients", None) is None or namespace in self._seals:  # sync client, or signed: executor
            from .._executor import run_blocking

            return await run_blocking(driver, self.read, namespace, scopes)
        keys = [self._key(namespace, _RECORD), *(self._key(namespace, s) for s in scopes)]
        ttl_ms, record_ms = self._read_ttl_ms.get(namespace, self._ttl_ms), self._ttl_ms

        async def command(client: Any) -> Any:
            return await client.evalsha(_READ_SHA, len(keys), *keys, ttl_ms, record_ms)

        try:
            values = await driver._acall(command, "EVALSHA (generations read)")
        except Exception as exc:
            if "NOSCRIPT" not in str(exc):
                raise

            async def load(client: Any) -> Any:
                return await client.eval(_READ, len(keys), *keys, ttl_ms, record_ms)

            values = await driver._acall(load, "EVAL (generations read)")
        return [_counter(v) for v in values]

    def bump(self, namespace: str, scopes: Sequence[str]) -> list[int]:
        return self.raise_above(namespace, scopes, [0] * len(scopes))

    def raise_above(self, namespace: str, scopes: Sequence[str], floors: Sequence[int]) -> list[int]:
        self._ensure_watching()
        if namespace in self._seals:
            signed = self._signed_set(namespace, scopes, floors)
            return [signed[scope] for scope in scopes]
        keys = [self._key(namespace, _RECORD), *(self._key(namespace, s) for s in scopes)]
        args = [self.channel, self._ttl_ms, namespace, *scopes, *(str(f) for f in floors)]
        raised = self._run("raise", lambda script, client: script(keys=keys, args=args, client=client))
        values = [int(v) for v in raised]
        self._notify(namespace, list(zip(scopes, values, strict=True)))
        return values

    def _signed_read(
        self, namespace: str, scopes: Sequence[str], keys: list[str], seal: GenerationSeal
    ) -> list[int]:
        """Read sealed counters; an absent one reads as its group's value (:mod:`._groups`; an absent group is
        created with a fresh sealed value). A counter that fails its MAC is refused and replaced by a fresh
        sealed value (a bump); a group that fails it is refused and replaced by a fresh value (not published)."""
        groups = groups_of(scopes)
        names = list(groups)
        position = [0] * len(scopes)
        for number, name in enumerate(names, 1):
            for index in groups[name]:
                position[index] = number
        start = _now_us()
        proposed = [seal.seal_text(namespace, name, start) for name in names]
        all_keys = [*keys, *(self._key(namespace, name) for name in names)]
        args = [self._ttl_ms, str(len(scopes)), *(str(p) for p in position), *proposed]
        raw = self._run("signed_read", lambda script, client: script(keys=all_keys, args=args, client=client))
        texts, group_texts = raw[: len(scopes)], raw[len(scopes) :]
        opened: dict[str, int | None] = {}
        refused_groups: dict[str, bytes] = {}
        values: list[int] = []
        refused: list[int] = []
        for index, (scope, text) in enumerate(zip(scopes, texts, strict=True)):
            if not text:  # no counter of its own: its group's value
                name = names[position[index] - 1]
                if name not in opened:
                    found = group_texts[position[index] - 1]
                    opened[name] = seal.open_text(namespace, name, found)
                    if opened[name] is None:
                        self._refuse(f"generation group {self._key(namespace, name)!r}")
                        refused_groups[name] = b"=" + (found if isinstance(found, bytes) else str(found).encode())
                values.append(opened[name] or 0)
                continue
            value = seal.open_text(namespace, scope, text)
            if value is None:
                self._refuse(f"generation counter {keys[index]!r}")
                refused.append(index)
                value = 0
            values.append(value)
        if refused_groups:  # never adopted: a fresh group value (only invalidates, so no one need hear of it)
            fresh = self._signed_set(namespace, [], [], refresh=refused_groups)
            for index in range(len(scopes)):
                if not texts[index] and names[position[index] - 1] in fresh:
                    values[index] = fresh[names[position[index] - 1]]
        if refused:  # never adopted: overwritten with a fresh value, which every process then hears of
            bumped = self.raise_above(namespace, [scopes[i] for i in refused], [0] * len(refused))
            for index, value in zip(refused, bumped, strict=True):
                values[index] = value
        return values

    def _signed_set(
        self, namespace: str, scopes: Sequence[str], floors: Sequence[int], *, refresh: dict[str, bytes] | None = None
    ) -> dict[str, int]:
        """A signed bump: in one script, raise each scope's group to a fresh sealed value (at or above the clock in
        µs, above the group's and each of its scopes' current values and each floor), then set each scope's
        counter to its group's new value; publish the scopes' values. ``refresh``: groups refused by
        their MAC on a read (with the text seen, ``"="`` first) to set afresh, unpublished. Returns the new value
        of every scope and group set."""
        seal = self._seals[namespace]
        groups = groups_of(scopes)
        for name in refresh or ():
            groups.setdefault(name, [])
        names = list(groups)
        now = _now_us()
        tops = {name: max([now, *(floors[i] + 1 for i in groups[name])]) for name in names}
        group_at = {i: name for name in names for i in groups[name]}
        keys = [*(self._key(namespace, s) for s in scopes), *(self._key(namespace, name) for name in names)]
        count = len(scopes)
        # Per counter: the text to overwrite whatever its number ("=" + text); a refused group's from the read.
        junk = [b""] * count + [(refresh or {}).get(name, b"") for name in names]
        for _ in range(_SIGNED_ATTEMPTS):
            # Compare-and-set on the numbers: set only above the current ones (a client whose clock is behind must
            # not move a counter back), else the script answers the current texts.
            values = [tops[group_at[i]] for i in range(count)]
            sealed = [seal.seal_text(namespace, s, v) for s, v in zip(scopes, values, strict=True)]
            sealed += [seal.seal_text(namespace, name, tops[name]) for name in names]
            lines = [f"{s}\t{text}" for s, text in zip(scopes, sealed[:count], strict=True)] + [""] * len(names)
            below = [str(tops[group_at[i]]) for i in range(count)] + [str(tops[name]) for name in names]
            args = [self.channel, self._ttl_ms, namespace, *sealed, *lines, *below, *junk]
            behind = self._run("signed_set", functools.partial(_run_script, keys=keys, args=args))
            if not behind:
                if scopes:
                    self._notify(namespace, list(zip(scopes, values, strict=True)))
                return {**tops, **dict(zip(scopes, values, strict=True))}
            for index, seen in zip(behind[::2], behind[1::2], strict=True):
                at = int(index) - 1
                name = scopes[at] if at < count else names[at - count]
                group = group_at[at] if at < count else name
                current = seal.open_text(namespace, name, seen[1:]) if seen else None
                if current is not None:  # a valid value ahead (another bump): go above it
                    tops[group], junk[at] = max(tops[group], current + 1), b""
                elif seen:  # issue 19: junk is untrusted input, never a number to go above; overwritten
                    if junk[at] != seen:
                        self._refuse(f"generation counter {keys[at]!r}")
                    junk[at] = seen
                else:  # the junk is gone meanwhile: set as an absent counter
                    junk[at] = b""
            if max(tops.values()) > _LARGEST:
                break
        raise DriverError(
            f"could not set the sealed generations of {namespace!r} above their current values (5 attempts, each "
            "overtaken by another bump?); this process uses private generations meanwhile"
        )

    def probe(self) -> bool:
        driver = self._driver
        return self._probe_through(driver.breaker, lambda: driver.call(lambda c: c.ping(), name="PING (generations)"))

    def entries_live(self, namespace: str, seconds: float | None) -> None:
        if seconds is not None and 0 < seconds < self._generation_ttl:
            self._read_ttl_ms[namespace] = str(max(int(seconds * 1000), 1))

    def trusted(self, namespace: str) -> bool:
        self._ensure_watching()
        return self._subscribed.is_set()

    def close(self) -> None:
        self._stop.set()
        self._subscribed.clear()
        self._inbox = None

    def probed(self, get: Callable[[str], Any]) -> Callable[[str], Any]:
        """``get`` preceded, at most once per :data:`PULL_INTERVAL`, by a pull of the subscription's socket.

        A Cache on this store reads through it, so it hears of another process's write at its next read even
        while the subscriber thread waits for a CPU or for the GIL (see the module docstring).
        """
        store = self
        clock = time.monotonic

        def probed_get(key: str) -> Any:
            inbox = store._inbox
            if inbox is not None and clock() >= inbox.due:
                inbox.pull(store)
            return get(key)

        return probed_get

    # -- internals -------------------------------------------------------------------------------------------

    def _key(self, namespace: str, scope: str) -> str:
        tag = namespace.replace("{", "(").replace("}", ")")
        return f"{self._key_base}{{{tag}}}/{scope}"

    def _run(self, name: str, call: Callable[[Any, Any], Any]) -> Any:
        """Run a script through the driver's breaker and error mapping (a dead Redis fails fast)."""
        def command(client: Any) -> Any:
            script = self._scripts.get(name)
            if script is None:
                script = self._scripts[name] = client.register_script(_SCRIPTS[name])
            return call(script, client)

        return self._driver.call(command, name=f"EVALSHA (generations {name})")

    def _ensure_watching(self) -> None:
        if self._thread is not None or self._stop.is_set():
            return
        with self._start_lock:
            if self._thread is None:
                _switch_interval()
                self._thread = threading.Thread(
                    target=_watch, args=(weakref.ref(self), self._stop), name="cachekit-generations", daemon=True
                )
                self._thread.start()

    def _subscribe(self) -> Any:
        pubsub = self._driver.client.pubsub()
        pubsub.subscribe(self.channel)  # sent; its confirmation is read by the inbox
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
        # Issue 19: a message that does not parse is counted and dropped, never a lost subscription; a signed
        # namespace's message is used only when every value carries a valid MAC.
        parsed = parse_notification(data, self._seals) if self._seals else parse_notification(data)
        if parsed is REFUSED:
            self._refuse(f"a notification on {self.channel!r}")
            return
        if parsed is None:
            self.malformed_notifications += 1
            if self.malformed_notifications == 1:
                logger.warning("cachekit: dropped a malformed message on %r (not a cachekit bump)", self.channel)
            return
        self._notify(*parsed)


def _run_script(script: Any, client: Any, *, keys: list[str], args: list[Any]) -> Any:
    return script(keys=keys, args=args, client=client)


def _counter(raw: bytes | str) -> int:
    """An unsigned counter's value; another client's junk (not a number below 2^53) is a private generation."""
    try:
        value = int(raw)
    except ValueError:
        return private_value()
    return value if 0 < value < COUNTER_LIMIT else private_value()


def _now_us() -> int:
    return time.time_ns() // 1000


def _switch_interval() -> None:
    """Opt-in only: ``CACHEKIT_SWITCH_INTERVAL=0.001`` sets the interpreter's switch interval (seconds).

    cachekit changes no process-wide setting by default; notifications do not need it (see the module docstring).
    """
    wanted = os.environ.get("CACHEKIT_SWITCH_INTERVAL")
    if not wanted:
        return
    try:
        seconds = float(wanted)
    except ValueError:
        logger.warning("cachekit: CACHEKIT_SWITCH_INTERVAL=%r is not a number of seconds; ignored", wanted)
        return
    if 0 < seconds < sys.getswitchinterval():
        sys.setswitchinterval(seconds)


class _Inbox:
    """The subscription's socket and what was received from it, read by whichever thread gets there first.

    The socket is non-blocking; every ``recv`` and every change of state happens under ``lock``. The subscriber
    thread waits for bytes in ``poll`` (GIL released) and then receives and applies everything; a reading thread
    (:meth:`pull`) receives what the kernel holds and applies the notifications: a thread already running needs
    neither the subscriber thread to be scheduled (before, the kernel copied a notification only once it was)
    nor the GIL to change hands (issue 23, item 6). RESP frames are
    parsed from ``buf``: ``parsed`` is where the first unapplied frame starts, ``filled`` where received bytes end.
    """

    __slots__ = ("buf", "closed", "due", "filled", "lock", "parsed", "poller", "sock")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.buf = bytearray(_BUFFER)
        self.parsed = self.filled = 0
        self.due = 0.0
        self.closed = False
        self.lock = threading.Lock()
        self.poller = select.poll() if hasattr(select, "poll") else None
        if self.poller is not None:
            self.poller.register(sock, select.POLLIN)

    def receive(self, store_ref: weakref.ref[RedisGenerations]) -> bool:
        """Wait (GIL released) for bytes, receive and apply them; False when the store is gone."""
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            pass  # decrypted bytes wait in the SSL object: poll() would not see them
        elif self.poller is not None:
            self.poller.poll(_WAIT * 1000)
        else:  # no poll() (Windows)
            select.select([self.sock], [], [], _WAIT)
        store = store_ref()
        if store is None:
            return False
        with self.lock:
            self._receive()
            self._apply(store, self.filled, replies=True)
            self._compact()
            if self.closed:
                raise ConnectionError("the generation subscription was closed by the server")
        return True

    def pull(self, store: RedisGenerations) -> None:
        """A reading thread: receive what the kernel holds and apply the notifications in it.

        Waits at most :data:`PULL_INTERVAL` for the lock: the subscriber may hold it while it waits for the GIL
        this thread holds, and waiting hands the GIL over.
        """
        self.due = time.monotonic() + PULL_INTERVAL
        if not store._subscribed.is_set() or not self.lock.acquire(timeout=PULL_INTERVAL):
            return  # before the confirmation, or while another thread receives (waiting lets it have the GIL)
        try:
            self._receive()
            self._apply(store, self.filled, replies=False)
            self._compact()
        except Exception:  # a read never fails for it: the subscriber meets the same and reconnects
            pass
        finally:
            self.lock.release()

    def _receive(self) -> None:
        """Receive what the kernel holds (under ``lock``); an end of stream marks the inbox closed."""
        while not self.closed:
            if self.filled == len(self.buf):
                self._make_room()
            try:
                count = self.sock.recv_into(memoryview(self.buf)[self.filled :])
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                return
            except OSError:
                self.closed = True
                return
            if count == 0:
                self.closed = True
                return
            self.filled += count
            if self.filled < len(self.buf):
                return

    def _compact(self) -> None:
        if self.parsed == self.filled:  # all applied: start again at 0
            self.parsed = self.filled = 0

    def _make_room(self) -> None:
        """The buffer is full of unapplied bytes: move them to the front, or grow it for one large frame."""
        start, buf = self.parsed, self.buf
        if start == 0:
            self.buf = buf + bytearray(len(buf))
            return
        kept = bytes(buf[start : self.filled])
        buf[: len(kept)] = kept
        self.parsed, self.filled = 0, len(kept)

    def _apply(self, store: RedisGenerations, end: int, *, replies: bool) -> None:
        """Apply the frames wholly in ``buf[parsed:end]``; other replies (the subscription's) only if ``replies``."""
        buf = self.buf
        while self.parsed < end:
            parsed = _frame(buf, self.parsed, end)
            if parsed is None:
                return
            items, after = parsed
            kind = items[0] if items else b""
            if kind == b"message" and len(items) == 3 and isinstance(items[2], bytes):
                store._on_message(items[2])
            elif not replies:
                return  # the subscriber thread handles everything else
            elif kind == b"subscribe":
                store._on_subscribed()
            self.parsed = after


def _frame(buf: bytearray, start: int, end: int) -> tuple[list[bytes | int], int] | None:
    """One RESP array (``*``, or a RESP3 push ``>``) of bulk strings and integers at ``start``; None: incomplete."""
    line = buf.find(b"\r\n", start, end)
    if line < 0 or buf[start] not in b"*>":
        return None if line < 0 else ([], line + 2)
    try:
        count = int(buf[start + 1 : line])
    except ValueError:
        return None
    position = line + 2
    items: list[bytes | int] = []
    for _ in range(count):
        line = buf.find(b"\r\n", position, end)
        if line < 0:
            return None
        head, body = buf[position], buf[position + 1 : line]
        try:
            size = int(body)
        except ValueError:
            return None
        if head == 0x24:  # $: a bulk string of `size` bytes
            data_end = line + 2 + size
            if data_end + 2 > end or buf[data_end : data_end + 2] != b"\r\n":
                return None
            items.append(bytes(buf[line + 2 : data_end]))
            position = data_end + 2
        else:  # :, an integer
            items.append(size)
            position = line + 2
    return items, position


def _watch(store_ref: weakref.ref[RedisGenerations], stop: threading.Event) -> None:
    """The subscriber loop: holds the store weakly, so a discarded driver ends it."""
    failures = [0]
    while not stop.is_set():
        store = store_ref()
        if store is None:
            return
        pubsub = inbox = None
        try:
            pubsub = store._subscribe()
            inbox = _Inbox(pubsub.connection._sock)
            store._inbox = inbox
            del store
            while not stop.is_set():
                if not inbox.receive(store_ref):
                    return
                failures[0] = 0
        except Exception as exc:
            store = store_ref()
            if store is not None:
                store._inbox = None
                store._on_lost(exc)
            del store
            stop.wait(_RECONNECT_DELAYS[min(failures[0], len(_RECONNECT_DELAYS) - 1)])
            failures[0] += 1
        finally:
            if pubsub is not None:
                if inbox is None:
                    _close_subscription(pubsub, stop)
                else:  # no read is inside recv() when the socket closes (its descriptor may be reused at once)
                    with inbox.lock:
                        inbox.closed = True
                        _close_subscription(pubsub, stop)


def _close_subscription(pubsub: Any, stop: threading.Event) -> None:
    """Give the subscription's connection back; once the store is closed, only close its socket.

    The store closes when its driver does, and the driver's pool has then disconnected every connection: going
    through the pool again takes its lock, which a daemon thread stopped at interpreter exit would hold forever
    (the main thread's ``Redis.__del__`` then waits for it: the process never exits).
    """
    try:
        if not stop.is_set():
            pubsub.close()
            return
        connection, pubsub.connection = pubsub.connection, None  # nor may its __del__ (PubSub.reset)
        sock = getattr(connection, "_sock", None)
        if sock is not None:
            sock.close()
    except Exception:
        pass
