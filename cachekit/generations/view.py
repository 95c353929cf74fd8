"""One namespace's local copy of the generations, and the keys it renders from them.

The hit path never talks to the store: a decorated read keeps, per call shape, the key it rendered and the
*epoch* of the resource it rendered it under; any change to a generation of that resource (a local bump, a
notification from another process, a reset) moves the epoch on, and the next call renders again.

Rendering asks the store only for generations this view does not know, or for all of them while the store says
local copies are not kept current (a lost subscription): then nothing is remembered and each read asks.

When the store cannot be reached:

* a bump that fails (after its retries) gives its scopes a *private* generation, a random negative number no
  other process uses, so this process never reads what it invalidated; the bump is kept pending (coalesced,
  collapsed to whole resources past ``pending_limit`` scopes) and retried at most once per ``retry_interval``
  seconds by a write, on the store's return, and by a background retrier that probes the store every
  :data:`PENDING_PROBE` seconds (:meth:`GenerationStore.probe`, past the breaker's cool-down) and retries as
  soon as it answers: other processes read a recovered backend at once, so a pending invalidation must reach
  it within that probe interval, not after this process's breaker cool-down (issue 23);
* a read whose generations cannot be fetched uses the last values this view knew (or, never known, a private
  one), so a memory tier in front of a dead Redis keeps serving what it holds. What other processes write
  during the outage is seen once the store is back; entries of the outage are bounded by the tier's TTL.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence

from ..errors import CircuitOpenError
from ..scopes import NAMESPACE_SCOPE, resource_of
from . import GenerationStore
from ._signing import GenerationSeal

__all__ = ["GenerationView", "KeyTemplate"]

logger = logging.getLogger("cachekit")

#: Memo entries rendered while the store is not trusted carry this epoch, which no resource ever has.
UNTRUSTED = -1
_KNOWN_LIMIT = 100_000
#: Seconds between the background retrier's probes of the store while bumps are pending.
PENDING_PROBE = 0.05


class _Cell:
    """The epoch of one resource: moves on whenever a generation the resource's keys embed may have changed."""

    __slots__ = ("epoch",)

    def __init__(self) -> None:
        self.epoch = 0


class KeyTemplate:
    """A read's key without its generations: the base string, the scopes it depends on, its resource's cell."""

    __slots__ = ("base", "cell", "scopes")

    def __init__(self, base: str, scopes: Sequence[str], cell: _Cell) -> None:
        self.base = base
        self.scopes = tuple(scopes)
        self.cell = cell


def _private_token() -> int:
    return -random.getrandbits(48) - 1


class GenerationView:
    """The generations one :class:`~cachekit.Cache` knows, kept current by its store."""

    def __init__(
        self,
        store: GenerationStore,
        namespace: str,
        *,
        retry_interval: float = 1.0,
        pending_limit: int = 1000,
        clock: Callable[[], float] = time.monotonic,
        seal: GenerationSeal | None = None,
        entry_ttl: float | None = None,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self._retry_interval = retry_interval
        self._pending_limit = pending_limit
        self._clock = clock
        self._known: dict[str, int] = {}
        self._fallback: dict[str, int] = {}
        self._private: dict[str, int] = {}
        self._unreachable: dict[str, int] = {}
        # The high-water mark (issue 19): the highest value seen per scope (ordered stores), or the last token
        # (unordered); kept across resets, so a store's value moving back is never adopted.
        self._floors: dict[str, int] = {}
        #: Times a store's value was below this process's high-water mark (a reset server, a counter set back).
        self.regressions = 0
        self._pending: set[str] = set()
        self._cells: dict[str, _Cell] = {}
        self._changes = 0
        #: The store's reads are in-process lookups (:attr:`GenerationStore.reads_in_process`): nothing is copied.
        self._reads_in_process = store.reads_in_process
        self._lock = threading.Lock()
        self._bump_lock = threading.Lock()
        self._retry_at = 0.0
        self._retrier: threading.Thread | None = None
        self._stuck = False  # see _retry_when_reachable
        self._closed = False
        self.failures = 0
        #: The last error the store raised (for the log line of a failed invalidation).
        self.last_error: BaseException | None = None
        store.use_seal(namespace, seal)
        store.entries_live(namespace, entry_ttl)
        store.watch(namespace, self)

    # -- rendering keys ----------------------------------------------------------------------------------------

    def template(self, base: str, scopes: Sequence[str]) -> KeyTemplate:
        """The template of a read's key; ``scopes[1]`` is its resource's scope."""
        resource = resource_of(scopes[1])
        cell = self._cells.get(resource)
        if cell is None:
            cell = self._cells.setdefault(resource, _Cell())
        return KeyTemplate(base, scopes, cell)

    def render(self, template: KeyTemplate) -> tuple[str, int]:
        """``(key, epoch)``: the key under the current generations, and the epoch it stays valid for."""
        trusted = self.store.trusted(self.namespace)
        epoch = template.cell.epoch if trusted else UNTRUSTED
        values, missing = self._local(template.scopes, trusted)
        certain = True
        if missing:
            wanted = [template.scopes[i] for i in missing]
            fetched, certain = self._fetch(wanted, remember=trusted)
            for index, value in zip(missing, fetched, strict=True):
                values[index] = value
        return template.base + "@" + ".".join(format(v, "x") for v in values), epoch if certain else UNTRUSTED

    async def arender(self, template: KeyTemplate) -> tuple[str, int]:
        """:meth:`render` for the event loop: generations not known locally come from the store's ``aread``
        (``redis.asyncio`` for Redis), never from a blocking call on the loop's thread; a store without one
        (in-process or polled: their reads are local or short file reads) is asked as :meth:`render` does."""
        aread = getattr(self.store, "aread", None)
        if aread is None:
            return self.render(template)
        trusted = self.store.trusted(self.namespace)
        epoch = template.cell.epoch if trusted else UNTRUSTED
        values, missing = self._local(template.scopes, trusted)
        certain = True
        if missing:
            wanted = [template.scopes[i] for i in missing]
            now = self._clock()
            if now < self._retry_at:
                fetched, certain = self._offline(wanted), False
            else:
                changes = self._changes
                try:
                    fetched = await aread(self.namespace, wanted)
                except Exception as exc:
                    fetched, certain = self._unreachable_now(wanted, now, exc), False
                else:
                    fetched = self._guard(wanted, fetched)
                    self._remember(wanted, fetched, changes, trusted)
            for index, value in zip(missing, fetched, strict=True):
                values[index] = value
        return template.base + "@" + ".".join(format(v, "x") for v in values), epoch if certain else UNTRUSTED

    def render_local(self, template: KeyTemplate) -> str | None:
        """The key of :meth:`render` from local copies only, or ``None`` when it would have to ask the store.

        For callers on an event loop (:mod:`cachekit.starlette`): ``None`` means "render on a worker thread".
        """
        if not self.store.trusted(self.namespace):
            return None
        values, missing = self._local(template.scopes, True)
        if missing:
            return None
        return template.base + "@" + ".".join(format(v, "x") for v in values)

    def key(self, base: str, scopes: Sequence[str]) -> str:
        """The full key of ``base`` depending on ``scopes`` (for one-off keys: facades, warmers)."""
        return self.render(self.template(base, scopes))[0]

    def _local(self, scopes: Sequence[str], trusted: bool) -> tuple[list[int], list[int]]:
        """The generations known here (0 where unknown), and the indexes of the unknown ones: the one body of
        :meth:`render`, :meth:`arender` and :meth:`render_local` before any store is asked. A store whose reads
        are in-process lookups is read here, and none is unknown."""
        private, known = self._private, self._known
        if self._reads_in_process:
            read = self.store.read(self.namespace, scopes)
            if private:
                read = [private.get(scope, value) for scope, value in zip(scopes, read, strict=True)]
            return read, []
        values: list[int] = []
        missing: list[int] = []
        for index, scope in enumerate(scopes):
            value = private.get(scope)
            if value is None and trusted:
                value = known.get(scope)
            if value is None:
                missing.append(index)
                value = 0
            values.append(value)
        return values, missing

    def _fetch(self, scopes: list[str], *, remember: bool) -> tuple[list[int], bool]:
        now = self._clock()
        if now < self._retry_at:
            return self._offline(scopes), False
        changes = self._changes
        try:
            values = self.store.read(self.namespace, scopes)
        except Exception as exc:
            return self._unreachable_now(scopes, now, exc), False
        values = self._guard(scopes, values)
        self._remember(scopes, values, changes, remember)
        return values, True

    def _unreachable_now(self, scopes: list[str], now: float, exc: Exception) -> list[int]:
        """A failed read of the store: retried after the interval; meanwhile the offline generations."""
        self._retry_at = now + self._retry_interval
        self._failed("read generations", exc)
        return self._offline(scopes)

    def _guard(self, scopes: list[str], values: list[int]) -> list[int]:
        """``values`` read from the store, never below the high-water mark (issue 19).

        Ordered stores: a value below the highest this process saw (a server reset, a counter set back) is not
        adopted; the scope is pushed above it (:meth:`GenerationStore.raise_above`), so every process converges
        on a value no entry was stored under before. Unordered (tokens): an absent token (0) of a scope whose
        token this process knew was deleted: the known one is kept.
        """
        floors = self._floors
        if not floors:
            return values
        ordered = self.store.ordered
        low: list[int] = []
        out = list(values)
        for index, (scope, value) in enumerate(zip(scopes, values, strict=True)):
            floor = floors.get(scope)
            if floor is None or value < 0:
                continue
            if ordered and value < floor:
                low.append(index)
            elif not ordered and value == 0:
                out[index] = floor
        if not low:
            return out
        self.regressions += len(low)
        pushed = [scopes[i] for i in low]
        try:
            raised = self.store.raise_above(self.namespace, pushed, [floors[s] for s in pushed])
        except Exception as exc:
            self._failed("raise generations above the high-water mark", exc)
            raised = [_private_token() for _ in pushed]  # unknown: private, never the lower value
        for index, value in zip(low, raised, strict=True):
            out[index] = value if value > floors[scopes[index]] or value < 0 else _private_token()
        return out

    def _remember(self, scopes: list[str], values: list[int], changes: int, remember: bool) -> None:
        if remember:
            with self._lock:
                if changes == self._changes:  # nothing changed meanwhile: what was read is still current
                    self._merge(zip(scopes, values, strict=True))
        for scope in scopes:
            self._unreachable.pop(scope, None)

    def _offline(self, scopes: list[str]) -> list[int]:
        fallback, unreachable = self._fallback, self._unreachable
        values = []
        for scope in scopes:
            value = fallback.get(scope)
            if value is None:
                if len(unreachable) > _KNOWN_LIMIT:
                    unreachable.clear()  # bounded: a forgotten private generation is replaced by a new one
                value = unreachable.setdefault(scope, _private_token())
            values.append(value)
        return values

    # -- bumps -------------------------------------------------------------------------------------------------

    def bump(self, scopes: Sequence[str], *, attempts: int = 1, delay: float = 0.0) -> bool:
        """Give ``scopes`` new generations; False when the store failed and the bump is pending (see module)."""
        if not scopes:
            return True
        with self._bump_lock:
            self._flush_locked()
            floors = self._floors
            marks = [floors.get(scope, 0) for scope in scopes] if floors else None  # before the bump's own
            for attempt in range(attempts):
                try:
                    values = self.store.bump(self.namespace, scopes)
                except Exception as exc:
                    if attempt + 1 < attempts and not isinstance(exc, CircuitOpenError):
                        time.sleep(delay * 2**attempt)
                        continue
                    self._failed("bump generations", exc)
                    self._retry_at = self._clock() + self._retry_interval
                    self._go_private(scopes)
                    return False
                if marks is not None:
                    values = self._above_marks(scopes, values, marks)
                self._adopt(list(zip(scopes, values, strict=True)))
                self._reached(scopes)
                return True
        return False  # pragma: no cover - attempts >= 1

    def _above_marks(self, scopes: Sequence[str], values: list[int], marks: list[int]) -> list[int]:
        """A bump's values, each above the scope's high-water mark as it was before the bump: a counter that was
        set back (or restarted low) gives a bump a value under which entries may have been stored before; it is
        raised above the mark."""
        if not self.store.ordered:
            return values
        low = [i for i, (v, m) in enumerate(zip(values, marks, strict=True)) if 0 < v <= m]
        if not low:
            return values
        self.regressions += len(low)
        pushed = [scopes[i] for i in low]
        try:
            raised = self.store.raise_above(self.namespace, pushed, [marks[i] for i in low])
        except Exception as exc:
            self._failed("raise generations above the high-water mark", exc)
            self._go_private(pushed)  # private (they win over known values) and pending: retried like a bump
            return values
        out = list(values)
        for index, value in zip(low, raised, strict=True):
            out[index] = value
        return out

    def _reached(self, scopes: Sequence[str]) -> None:
        """A bump of ``scopes`` reached the store: their private generations (and pending bumps) are over.

        Kept, a private generation froze the scope's keys: a later write's bump reached the store, but reads
        still used the private value the first failed write gave, under which a load begun before the later
        write had stored its value (issue 23, item 1: every stale read after a recovery, until the pending
        retry, throttled to once a second, went through).
        """
        if not self._private:
            return
        with self._lock:  # after changed(): the store's value is known before the private one goes
            over = [scope for scope in scopes if self._private.pop(scope, None) is not None]
            self._pending.difference_update(over)
            if over:
                self._moved(over)  # keys rendered with the private value meanwhile must be rendered again

    @property
    def pending(self) -> frozenset[str]:
        """Scopes whose bump has not reached the store yet."""
        return frozenset(self._pending)

    def flush(self) -> bool:
        """Retry pending bumps (at most once per retry interval); True when none is left."""
        if not self._pending:
            return True
        with self._bump_lock:
            return self._flush_locked()

    def _flush_locked(self, *, now_or_never: bool = False) -> bool:
        if not self._pending:
            return True
        now = self._clock()
        if now < self._retry_at and not now_or_never:
            return False
        scopes = sorted(self._pending)
        try:
            values = self.store.bump(self.namespace, scopes)
        except Exception as exc:
            self._retry_at = now + self._retry_interval
            self._failed("retry pending bumps", exc)
            return False
        with self._lock:
            for scope in scopes:
                self._private.pop(scope, None)
            self._pending.difference_update(scopes)
            self._merge(zip(scopes, values, strict=True))
            self._moved(scopes)
        logger.info("cachekit: %d pending invalidation(s) of %r reached the store", len(scopes), self.namespace)
        return True

    def _go_private(self, scopes: Sequence[str]) -> None:
        with self._lock:
            pending = self._pending
            # A pending resource (or namespace) covers its scopes, as its generation is in every key of theirs:
            # a new private generation for it invalidates them all again.
            covering = [NAMESPACE_SCOPE] if NAMESPACE_SCOPE in pending else []
            changed = {covering[0] if covering else resource_of(s) if resource_of(s) in pending else s for s in scopes}
            pending.update(changed)
            for scope in changed:
                self._private[scope] = _private_token()
            if len(pending) > self._pending_limit:
                self._collapse()
            self._moved(list(changed))
            if self._retrier is None and not self._closed:
                self._retrier = threading.Thread(
                    target=_retry_pending, args=(weakref.ref(self),), name="cachekit-pending", daemon=True
                )
                self._retrier.start()

    def _retry_when_reachable(self) -> bool:
        """The background retrier's turn: when the store answers a probe, retry the pending bumps now. False
        (and the retrier gone) once none is left or the view is closed."""
        if not self._closed and self._pending:
            if self.store.probe():
                with self._bump_lock:
                    # The store answers but a retry failed: a failing bump, not an outage; back to the retry
                    # interval rather than a retry per probe.
                    self._flush_locked(now_or_never=not self._stuck)
                    self._stuck = bool(self._pending)
            else:
                self._stuck = False
        with self._lock:
            if self._pending and not self._closed:
                return True
            self._retrier = None
            return False

    def _collapse(self) -> None:
        """Too many pending scopes: keep whole resources instead (and the whole namespace past that)."""
        resources = {resource_of(scope) for scope in self._pending}
        if len(resources) > self._pending_limit:
            resources = {NAMESPACE_SCOPE}
        self._pending = resources
        self._private = {scope: _private_token() for scope in resources}
        self._moved([NAMESPACE_SCOPE])

    # -- what the store tells --------------------------------------------------------------------------------

    def changed(self, pairs: Sequence[tuple[str, int]]) -> None:
        """Scopes have new generations (a bump here or in another process).

        Only scopes this view already knows (or has a high-water mark for) adopt the value told; the others are
        read from the store when needed (issue 19: a notification is never the first value a process learns,
        so a replayed one cannot roll a fresh process back).
        """
        with self._lock:
            known, floors = self._known, self._floors
            self._merge([(s, v) for s, v in pairs if s in known or s in floors])
            self._moved([scope for scope, _ in pairs])

    def _adopt(self, pairs: Sequence[tuple[str, int]]) -> None:
        """This view's own bump reached the store: its values are adopted."""
        with self._lock:
            self._merge(pairs)
            self._moved([scope for scope, _ in pairs])

    def reset(self) -> None:
        """Forget what is known (changes may have been missed); keep it as the outage fallback."""
        with self._lock:
            if len(self._fallback) + len(self._known) > _KNOWN_LIMIT:
                self._fallback.clear()  # bounded (issue 19): a scope without a fallback is private in an outage
            self._fallback.update(self._known)
            self._known.clear()
            self._moved([NAMESPACE_SCOPE])

    def resumed(self) -> None:
        """The store is back: retry pending bumps now."""
        self._retry_at = 0.0
        self.flush()

    def _merge(self, pairs: Iterable[tuple[str, int]]) -> None:
        # The fallback (what an offline read uses) learns every value too: a bump that reached the store while
        # reads could not (a subscription not confirmed yet, the read retry window) must not leave it with the
        # value from before that bump, under which a load begun before the write may have been stored.
        self._changes += 1
        if self._reads_in_process:
            return  # nothing is copied: the store is read at every render
        known, fallback, ordered = self._known, self._fallback, self.store.ordered
        if len(known) > _KNOWN_LIMIT:
            known.clear()  # bounded: what is forgotten is read again when needed
        if len(fallback) > _KNOWN_LIMIT:
            fallback.clear()
        unreachable, floors = self._unreachable, self._floors
        if len(floors) > _KNOWN_LIMIT:
            floors.clear()  # bounded: a forgotten mark protects no more than a fresh process has
        for scope, told in pairs:
            value = told
            if value > 0:
                mark = floors.get(scope)
                if mark is None or not ordered:
                    floors[scope] = value
                elif mark > value:
                    value = mark  # a replayed older value (a notification): the mark stands
                else:
                    floors[scope] = value
            old = known.get(scope)
            latest = value if old is None or not ordered else max(old, value)
            known[scope] = latest
            older = fallback.get(scope)
            fallback[scope] = latest if older is None or not ordered else max(older, latest)
            unreachable.pop(scope, None)

    def _moved(self, scopes: Sequence[str]) -> None:
        self._changes += 1
        if NAMESPACE_SCOPE in scopes:
            cells = list(self._cells.values())
        else:
            cells = [c for c in (self._cells.get(resource_of(s)) for s in scopes) if c is not None]
        for cell in cells:
            cell.epoch += 1

    def _failed(self, what: str, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = exc
        logger.debug("cachekit: could not %s of namespace %r: %s", what, self.namespace, exc)

    def close(self) -> None:
        """Stop listening to the store (and retrying pending bumps in the background)."""
        self._closed = True
        self.store.unwatch(self.namespace, self)



def _retry_pending(view_ref: weakref.ref[GenerationView]) -> None:
    """The background retrier of one view's pending bumps; holds the view weakly, ends when none is left."""
    while True:
        time.sleep(PENDING_PROBE)
        view = view_ref()
        if view is None or not view._retry_when_reachable():
            return
        del view
