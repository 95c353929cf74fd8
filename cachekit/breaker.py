"""A circuit breaker per backend: after a timeout or N consecutive failures, skip it for a cool-down.

A hung or dead backend costs every call a timeout (Redis ``command_timeout``, S3 ``read_timeout``). The breaker
turns that into one timeout per cool-down:

* **closed** (normal): calls go through; a *timeout* opens the breaker at once, other backend failures
  (connection refused, reset, 5xx) open it after ``failures`` in a row; a success resets the count.
* **open**: calls fail fast with :class:`~cachekit.errors.CircuitOpenError` (a ``DriverUnavailable``, so reads
  fail open above) for ``cooldown`` seconds, without touching the backend.
* **half-open**: after the cool-down, exactly one caller is let through as the *probe*; everyone else keeps
  failing fast until it reports. The probe's success closes the breaker; its failure opens it for another
  cool-down.

Errors that mean "the backend answered" (a Redis ``WRONGTYPE``, an S3 ``403``) are not failures of the backend
and leave the breaker as it is. Every driver that talks to a network service runs *each* of its backend calls
through :meth:`CircuitBreaker.guard`; a multi-tier driver gives each tier one (the driver's own when it has one).

E.g.::

    breaker = CircuitBreaker("Redis at redis://127.0.0.1:6379/0", failures=3, cooldown=2.0)
    with breaker.guard(classify):        # raises CircuitOpenError while open
        client.get("k")
    breaker.state                        # "closed" | "open" | "half-open"
    breaker.stats()                      # {"state": ..., "trips": ..., "rejected": ..., ...}
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, Literal

from ._logging import log_once_per_interval
from ._redact import redact
from .errors import CircuitOpenError, ConfigurationError

__all__ = [
    "CLOSED",
    "DEFAULT_COOLDOWN",
    "DEFAULT_FAILURES",
    "HALF_OPEN",
    "OPEN",
    "CircuitBreaker",
    "Verdict",
    "check_breaker_options",
]

#: Calls go through (the healthy state).
CLOSED: Final = "closed"
#: Calls fail fast with ``CircuitOpenError`` until the cool-down ends.
OPEN: Final = "open"
#: After the cool-down: one caller probes the backend, the others still fail fast.
HALF_OPEN: Final = "half-open"

#: Consecutive failures that open the breaker (a timeout opens it at once).
DEFAULT_FAILURES: Final = 3
#: Seconds the breaker stays open before one probe call is let through.
DEFAULT_COOLDOWN: Final = 2.0
#: A probe that has not reported after this many seconds (a bug, a killed thread) lets another caller probe.
_PROBE_LEASE: Final = 60.0

#: How a finished call counts: ``"ok"`` (the backend answered, even with an error), ``"failure"`` (counted
#: towards ``failures``), ``"trip"`` (a timeout: open now).
Verdict = Literal["ok", "failure", "trip"]


class CircuitBreaker:
    """The state machine of one backend; thread-safe, and lock-free while closed and healthy.

    :param name: what the backend is, for messages (``"Redis at redis://h:6379/0"``; secrets are redacted).
    :param failures: consecutive failures that open it (>= 1).
    :param cooldown: seconds it stays open before one probe (> 0).
    :param clock: monotonic seconds (default :func:`time.monotonic`); tests pass a fake one.
    """

    def __init__(
        self,
        name: str,
        *,
        failures: int = DEFAULT_FAILURES,
        cooldown: float = DEFAULT_COOLDOWN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold, self.cooldown = check_breaker_options(failures, cooldown)
        self.name = redact(name)
        self._clock = clock
        self._lock = threading.Lock()
        self._state: str = CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None
        self._expedited = False  # half-opened by expedite(): its probe failing is no new trip
        self._last_failure = ""
        self.trips = self.rejected = self.failures = 0
        self._listeners: list[Callable[[CircuitBreaker, str, str], None]] = []

    def add_listener(self, listener: Callable[[CircuitBreaker, str, str], None]) -> None:
        """Call ``listener(breaker, old_state, new_state)`` on every state change (never on the closed path).

        Used by :mod:`cachekit.events` for ``"breaker"`` events; a listener that raises is logged and ignored.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[CircuitBreaker, str, str], None]) -> None:
        """Stop calling ``listener`` (no error when it was not added)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _changed(self, old: str, new: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(self, old, new)
            except Exception as exc:
                log_once_per_interval(
                    logging.WARNING, (self.name, "listener", type(exc).__name__),
                    "cachekit: a listener of %s failed (%s: %s); ignored", self.name, type(exc).__name__, exc,
                )

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"`` (an open breaker past its cool-down reads as half-open)."""
        if self._state == OPEN and self._clock() - self._opened_at >= self.cooldown:
            return HALF_OPEN
        return self._state

    @property
    def closed(self) -> bool:
        """True while the breaker is closed (the common case: a cheap check for hot paths)."""
        return self._state == CLOSED

    def allows_calls(self) -> bool:
        """True when a call now would reach the backend (closed, or a probe is due); does not take the probe."""
        state = self.state
        return state == CLOSED or (state == HALF_OPEN and self._probe_started is None)

    @contextmanager
    def guard(self, classify: Callable[[BaseException], Verdict]) -> Iterator[None]:
        """Run the body as one backend call: fail fast while open, record the outcome afterwards.

        ``classify`` tells how an exception raised by the body counts; the exception always propagates.

        :raises CircuitOpenError: while the breaker is open, or half-open with another caller probing.
        """
        probe = self.enter()
        try:
            yield
        except BaseException as exc:
            self.exit(probe, exc, classify(exc) if isinstance(exc, Exception) else "ok")
            raise
        self.exit(probe)

    def exit(self, probe: bool, exc: BaseException | None = None, verdict: Verdict = "ok") -> None:
        """Record how a call admitted by :meth:`enter` ended (``verdict`` counts only with ``exc``)."""
        if exc is None or verdict == "ok":
            self._succeeded(probe)
        else:
            self._failed(exc, trip=verdict == "trip", probe=probe)

    def record_failure(self, exc: BaseException, *, trip: bool = False) -> None:
        """Count a failure observed outside :meth:`guard` (e.g. a whole batch that failed)."""
        self._failed(exc, trip=trip, probe=False)

    def expedite(self) -> None:
        """Let the next call be the probe now rather than after the cool-down.

        For a caller that must learn at once that the backend is back (a pending invalidation: other processes
        read the recovered backend as soon as it answers). A probe that fails opens the breaker again for a full
        cool-down, without counting a trip. No-op unless open.
        """
        with self._lock:
            if self._state != OPEN:
                return
            self._state, self._expedited = HALF_OPEN, True
        if self._listeners:
            self._changed(OPEN, HALF_OPEN)

    def reset(self) -> None:
        """Close the breaker and forget the failures (e.g. after reconfiguring the backend)."""
        with self._lock:
            self._state, self._consecutive, self._probe_started = CLOSED, 0, None

    def stats(self) -> dict[str, Any]:
        """State and counters: ``state``, ``consecutive_failures``, ``failures``, ``trips``, ``rejected``
        (calls that failed fast), ``retry_in`` (seconds until the probe, while open), ``last_failure``,
        ``failure_threshold``, ``cooldown``."""
        state = self.state
        retry_in = max(0.0, self._opened_at + self.cooldown - self._clock()) if state == OPEN else 0.0
        return {
            "state": state,
            "consecutive_failures": self._consecutive,
            "failures": self.failures,
            "trips": self.trips,
            "rejected": self.rejected,
            "retry_in": round(retry_in, 3),
            "last_failure": self._last_failure or None,
            "failure_threshold": self.failure_threshold,
            "cooldown": self.cooldown,
        }

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name} {self.state}>"

    # -- transitions ---------------------------------------------------------------------------------------

    def enter(self) -> bool:
        """Admit one call; return whether it is the half-open probe. Pair it with :meth:`exit`.

        :meth:`guard` does both; a hot path may call them directly to save the context manager.

        :raises CircuitOpenError: to fail fast while open, or while another caller probes.
        """
        if self._state == CLOSED:  # the hot path: no lock
            return False
        with self._lock:
            if self._state == CLOSED:
                return False
            now = self._clock()
            half_opened = self._state == OPEN and now - self._opened_at >= self.cooldown
            if half_opened:
                self._state = HALF_OPEN
            probing = self._state == HALF_OPEN and (
                self._probe_started is None or now - self._probe_started >= _PROBE_LEASE
            )
            if probing:
                self._probe_started = now
            else:
                self.rejected += 1
            remaining = self._opened_at + self.cooldown - now
        if half_opened and self._listeners:
            self._changed(OPEN, HALF_OPEN)
        if probing:
            return True
        when = f"for another {remaining:.2f} s" if remaining > 0 else "while one call probes it"
        raise CircuitOpenError(
            f"{self.name} is skipped: its circuit breaker is open after {self._last_failure or 'failures'}; "
            f"calls fail fast {when}, then one probe call checks it (options breaker_failures, "
            "breaker_cooldown)"
        )

    def _succeeded(self, probe: bool) -> None:
        if self._state == CLOSED and not self._consecutive:  # the hot path: no lock
            return
        with self._lock:
            old = self._state
            recovered = self._state != CLOSED and (probe or self._state == HALF_OPEN)
            if self._state == CLOSED or recovered:
                self._state, self._consecutive, self._probe_started = CLOSED, 0, None
                self._expedited = False
            elif probe:
                self._probe_started = None
        if recovered:
            log_once_per_interval(logging.INFO, (self.name, "recovered"), "cachekit: %s recovered", self.name)
            if self._listeners:
                self._changed(old, CLOSED)

    def _failed(self, exc: BaseException, *, trip: bool, probe: bool) -> None:
        description = redact(f"{type(exc).__name__}: {exc}")
        with self._lock:
            old = self._state
            self.failures += 1
            self._consecutive += 1
            self._last_failure = description
            opening = (
                probe
                or self._state == HALF_OPEN
                or (self._state == CLOSED and (trip or self._consecutive >= self.failure_threshold))
            )
            if opening:
                if not (old == HALF_OPEN and self._expedited):
                    self.trips += 1
                self._state, self._opened_at, self._probe_started = OPEN, self._clock(), None
                self._expedited = False
        if opening:
            log_once_per_interval(
                logging.WARNING,
                (self.name, "open"),
                "cachekit: %s is failing (%s); circuit breaker open: calls fail fast for %.1f s, then one probe",
                self.name, description, self.cooldown,
            )
            if self._listeners:
                self._changed(old, OPEN)


def check_breaker_options(failures: object, cooldown: object) -> tuple[int, float]:
    """Validate ``breaker_failures`` (int >= 1) and ``breaker_cooldown`` (finite seconds > 0)."""
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
        raise ConfigurationError(
            f"breaker_failures must be an int >= 1 (consecutive failures that open the circuit breaker; "
            f"default {DEFAULT_FAILURES}); got {failures!r}"
        )
    if (
        isinstance(cooldown, bool)
        or not isinstance(cooldown, (int, float))
        or not (math.isfinite(cooldown) and cooldown > 0)
    ):
        raise ConfigurationError(
            f"breaker_cooldown must be a finite number of seconds > 0 (how long an open circuit breaker "
            f"fails fast before one probe; default {DEFAULT_COOLDOWN}); got {cooldown!r}"
        )
    return failures, float(cooldown)
