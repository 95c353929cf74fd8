"""The circuit breaker's state machine, driven by an injectable clock (no sleeps)."""

from __future__ import annotations

import logging
import threading

import pytest

from cachekit.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, Verdict
from cachekit.errors import CircuitOpenError, ConfigurationError, DriverUnavailable
from tests.conftest import FakeClock


class Refused(Exception):
    """A backend failure (counts towards the threshold)."""


class TimedOut(Exception):
    """A timeout (trips the breaker at once)."""


class Answered(Exception):
    """The backend answered with an error (not a failure of the backend)."""


def verdict(exc: BaseException) -> Verdict:
    if isinstance(exc, TimedOut):
        return "trip"
    return "failure" if isinstance(exc, Refused) else "ok"


@pytest.fixture
def ticks() -> FakeClock:
    return FakeClock(100.0)


@pytest.fixture
def breaker(ticks: FakeClock) -> CircuitBreaker:
    return CircuitBreaker("Redis at redis://:hunter2@127.0.0.1:6379/0", failures=3, cooldown=2.0, clock=ticks)


def fail(breaker: CircuitBreaker, exc: Exception) -> None:
    with pytest.raises(type(exc)), breaker.guard(verdict):
        raise exc


def succeed(breaker: CircuitBreaker) -> None:
    with breaker.guard(verdict):
        pass


def test_consecutive_failures_open_it_and_a_success_resets_the_count(breaker: CircuitBreaker) -> None:
    fail(breaker, Refused())
    fail(breaker, Refused())
    succeed(breaker)
    fail(breaker, Refused())
    fail(breaker, Refused())
    assert breaker.state == CLOSED
    fail(breaker, Refused())
    assert breaker.state == OPEN
    assert breaker.stats()["trips"] == 1


def test_a_timeout_opens_it_at_once_and_open_fails_fast(breaker: CircuitBreaker, ticks: FakeClock) -> None:
    fail(breaker, TimedOut("read timed out"))
    assert breaker.state == OPEN
    ran = []
    with pytest.raises(CircuitOpenError, match=r"open after TimedOut: read timed out.*for another 2\.00 s") as err:
        with breaker.guard(verdict):
            ran.append(1)
    assert ran == []
    assert isinstance(err.value, DriverUnavailable)  # reads above fail open on it
    assert "hunter2" not in str(err.value)
    ticks.advance(1.5)
    assert breaker.stats()["retry_in"] == 0.5
    assert breaker.stats()["rejected"] == 1


def test_an_error_reply_is_not_a_backend_failure(breaker: CircuitBreaker) -> None:
    for _ in range(10):
        fail(breaker, Answered())
    assert breaker.state == CLOSED
    assert breaker.stats()["consecutive_failures"] == 0


def test_after_the_cooldown_one_probe_decides(breaker: CircuitBreaker, ticks: FakeClock) -> None:
    fail(breaker, TimedOut())
    ticks.advance(2.0)
    assert breaker.state == HALF_OPEN
    fail(breaker, Refused())  # the probe fails: open for another cool-down
    assert breaker.state == OPEN
    with pytest.raises(CircuitOpenError):
        succeed(breaker)
    ticks.advance(2.0)
    succeed(breaker)  # the probe succeeds: closed
    assert breaker.state == CLOSED
    assert breaker.stats()["trips"] == 2
    succeed(breaker)


def test_while_one_caller_probes_the_others_fail_fast(breaker: CircuitBreaker, ticks: FakeClock) -> None:
    fail(breaker, TimedOut())
    ticks.advance(2.0)
    probing, release = threading.Event(), threading.Event()
    outcome: list[str] = []

    def probe() -> None:
        with breaker.guard(verdict):
            probing.set()
            release.wait(5)
        outcome.append("probed")

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        assert probing.wait(5)
        for _ in range(3):
            with pytest.raises(CircuitOpenError, match="while one call probes it"):
                succeed(breaker)
    finally:
        release.set()
        thread.join(5)
    assert outcome == ["probed"]
    assert breaker.state == CLOSED


def test_an_in_flight_failure_during_the_probe_does_not_wedge_it(breaker: CircuitBreaker, ticks: FakeClock) -> None:
    fail(breaker, TimedOut())
    ticks.advance(2.0)
    probe = breaker.enter()
    assert probe is True
    breaker.record_failure(Refused("a call from before the trip"))  # reopens
    assert breaker.state == OPEN
    ticks.advance(2.0)
    assert breaker.enter() is True  # a new probe is admitted after the next cool-down
    breaker.exit(True)
    assert breaker.state == CLOSED


def test_a_non_exception_base_exception_releases_the_probe(breaker: CircuitBreaker, ticks: FakeClock) -> None:
    fail(breaker, TimedOut())
    ticks.advance(2.0)
    with pytest.raises(KeyboardInterrupt), breaker.guard(verdict):
        raise KeyboardInterrupt
    succeed(breaker)
    assert breaker.state == CLOSED


def test_transitions_are_logged_once_with_the_secret_redacted(
    breaker: CircuitBreaker, ticks: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cachekit"):
        fail(breaker, TimedOut())
        for _ in range(5):
            with pytest.raises(CircuitOpenError):
                succeed(breaker)
        ticks.advance(2.0)
        succeed(breaker)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert "circuit breaker open" in messages[0]
    assert "recovered" in messages[1]
    assert not any("hunter2" in message for message in messages)


@pytest.mark.parametrize(
    ("failures", "cooldown", "message"),
    [
        (0, 1.0, "breaker_failures must be an int >= 1"),
        (True, 1.0, "breaker_failures"),
        (2.5, 1.0, "breaker_failures"),
        (3, 0, "breaker_cooldown must be a finite number of seconds > 0"),
        (3, float("nan"), "breaker_cooldown"),
        (3, "1", "breaker_cooldown"),
    ],
)
def test_options_are_validated(failures: object, cooldown: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CircuitBreaker("x", failures=failures, cooldown=cooldown)  # type: ignore[arg-type]


def test_expedite_lets_the_next_call_probe_before_the_cooldown(breaker: CircuitBreaker, ticks: FakeClock) -> None:
    # A pending invalidation must learn at once that the backend is back (issue 23): it does not wait out the
    # cool-down. A failed expedited probe opens it for a full cool-down again, without counting a trip.
    fail(breaker, TimedOut())
    breaker.expedite()
    assert breaker.state == HALF_OPEN
    fail(breaker, Refused())
    assert breaker.state == OPEN
    assert breaker.stats()["trips"] == 1
    with pytest.raises(CircuitOpenError):
        succeed(breaker)  # reads still fail fast: the cool-down started again
    breaker.expedite()
    succeed(breaker)  # the backend answers: closed, long before the cool-down ended
    assert breaker.state == CLOSED
    breaker.expedite()  # no-op while closed
    assert breaker.state == CLOSED
    assert breaker.stats()["trips"] == 1
