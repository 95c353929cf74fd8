"""Rate-limited logging: one line per cause per interval, with a count of what was suppressed.

A backend outage produces the same failure thousands of times a second. :class:`RateLimitedLog` lets the first
occurrence of a *cause* (any hashable: ``("redis", "127.0.0.1:6379", "DriverUnavailable")``) through, drops the
repeats for ``interval`` seconds, and puts the count of dropped lines on the next line it lets through::

    cachekit: Redis at redis://127.0.0.1:6379/0 is failing (...) [412 similar suppressed in the last 10.0 s]

Every message goes through :func:`cachekit._redact.redact` first. The process shares one limiter,
:data:`LIMITER`; :func:`set_log_interval` changes its interval (default 10 s). The namespace reports read and
invalidation failures through :func:`read_failed` and :func:`invalidation_failed`, the drivers and tiers
through :func:`log_once_per_interval`.

E.g.::

    log_once_per_interval(logging.WARNING, ("redis", where, "open"), "cachekit: %s breaker open", where)
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final

from ._redact import redact
from .errors import ConfigurationError, CorruptEntryError

__all__ = [
    "DEFAULT_LOG_INTERVAL",
    "LIMITER",
    "RateLimitedLog",
    "invalidation_failed",
    "log_once_per_interval",
    "read_failed",
    "set_log_interval",
]

logger = logging.getLogger("cachekit")

#: Seconds between two lines of one cause.
DEFAULT_LOG_INTERVAL: Final = 10.0
#: Causes remembered at most (the oldest are forgotten first), so odd keys cannot grow the table forever.
_MAX_CAUSES: Final = 1024


def _check_interval(seconds: object) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (
        math.isfinite(seconds) and seconds > 0
    ):
        raise ConfigurationError(f"the log interval must be a finite number of seconds > 0; got {seconds!r}")
    return float(seconds)


class _Cause:
    __slots__ = ("last_logged", "suppressed")

    def __init__(self, now: float) -> None:
        self.last_logged = now
        self.suppressed = 0


class RateLimitedLog:
    """Let one line per cause through per ``interval`` seconds; count the others and report them later.

    :param interval: seconds between two lines of the same cause (> 0).
    :param clock: monotonic seconds (injectable for tests).
    :param target: the logger written to (``logging.getLogger("cachekit")``).
    """

    def __init__(
        self,
        interval: float = DEFAULT_LOG_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        target: logging.Logger = logger,
    ) -> None:
        self.interval = _check_interval(interval)
        self._clock = clock
        self._target = target
        self._causes: OrderedDict[Hashable, _Cause] = OrderedDict()
        self._lock = threading.Lock()

    def log(self, level: int, cause: Hashable, message: str, *args: object) -> bool:
        """Log ``message % args`` at ``level`` unless ``cause`` was logged less than ``interval`` ago.

        Returns whether the line was written. A suppressed line is counted and reported, as
        ``[N similar suppressed in the last S s]``, on the next line of that cause.
        """
        now = self._clock()
        with self._lock:
            seen = self._causes.get(cause)
            if seen is not None and now - seen.last_logged < self.interval:
                seen.suppressed += 1
                return False
            suppressed = 0 if seen is None else seen.suppressed
            since = 0.0 if seen is None else now - seen.last_logged
            self._causes[cause] = _Cause(now)
            self._causes.move_to_end(cause)
            while len(self._causes) > _MAX_CAUSES:
                self._causes.popitem(last=False)
        if not self._target.isEnabledFor(level):
            return False
        text = message % args if args else message
        if suppressed:
            text += f" [{suppressed} similar suppressed in the last {since:.1f} s]"
        self._target.log(level, "%s", redact(text))
        return True

    def reset(self) -> None:
        """Forget every cause (the next line of each is written)."""
        with self._lock:
            self._causes.clear()


#: The limiter shared by the whole process.
LIMITER: Final = RateLimitedLog()


def set_log_interval(seconds: float) -> None:
    """Set the seconds between two log lines of one cause, for the whole process (default 10 s)."""
    LIMITER.interval = _check_interval(seconds)


def log_once_per_interval(level: int, cause: Hashable, message: str, *args: object) -> bool:
    """Log through the shared :data:`LIMITER`; see :meth:`RateLimitedLog.log`."""
    return LIMITER.log(level, cause, message, *args)


def read_failed(namespace: str, driver: str, key: str | None, exc: BaseException) -> bool:
    """The namespace's line for a read (or store) that failed open: a driver error or a corrupt entry dropped.

    One WARNING per (namespace, driver, error type) per interval; returns whether it was written.
    """
    kind = "corrupt entry dropped" if isinstance(exc, CorruptEntryError) else "driver error"
    return LIMITER.log(
        logging.WARNING,
        ("read", namespace, driver, type(exc).__name__),
        "cachekit: %s on %s (namespace %r, key %r): %s; reading through to the source",
        kind, driver, namespace, key, exc,
    )


def invalidation_failed(namespace: str, driver: str, attempts: int, exc: BaseException) -> bool:
    """The namespace's line for an invalidation that failed after its retries (it stays queued).

    One ERROR per (namespace, driver, error type) per interval; returns whether it was written.
    """
    return LIMITER.log(
        logging.ERROR,
        ("invalidation", namespace, driver, type(exc).__name__),
        "cachekit: invalidation on %s failed after %d attempt(s) (%s); namespace %r keeps it pending and reads "
        "what it touched under private generations until it goes through, so this process serves nothing stale",
        driver, attempts, exc, namespace,
    )
