"""The circuit breaker's transitions, driven by an explicit clock."""

from __future__ import annotations

from smsgw.domain.breaker import BreakerConfig, BreakerState, CircuitBreaker

CONFIG = BreakerConfig(window=10, min_calls=4, failure_ratio=0.5, consecutive_failures=3,
                       cooldown_seconds=30, half_open_probes=2, probes_to_close=2)


def tripped(now: float = 0.0) -> tuple[CircuitBreaker, list[BreakerState]]:
    seen: list[BreakerState] = []
    breaker = CircuitBreaker(CONFIG, seen.append)
    for _ in range(3):
        assert breaker.allow(now)
        breaker.record(True, now)
    return breaker, seen


def test_consecutive_failures_open_it_and_an_open_breaker_refuses_calls() -> None:
    breaker, seen = tripped()
    assert breaker.state is BreakerState.OPEN and seen == [BreakerState.OPEN]
    assert not breaker.allow(29.9)
    assert breaker.room(29.9) == 0


def test_a_failure_ratio_over_the_window_opens_it_without_a_streak() -> None:
    breaker = CircuitBreaker(CONFIG)
    for failed in (True, False, True, False):  # 50% of 4 calls, never 3 in a row
        breaker.record(failed, 0)
    assert breaker.state is BreakerState.OPEN


def test_too_few_calls_never_open_it_on_the_ratio() -> None:
    breaker = CircuitBreaker(CONFIG)
    for failed in (True, False, True):
        breaker.record(failed, 0)
    assert breaker.state is BreakerState.CLOSED


def test_old_outcomes_slide_out_of_the_window() -> None:
    breaker = CircuitBreaker(BreakerConfig(window=4, min_calls=4, failure_ratio=0.75,
                                           consecutive_failures=100))
    for failed in (True, True, False, False, False, True):
        breaker.record(failed, 0)
    assert breaker.state is BreakerState.CLOSED  # the window holds F,F,F,T: 25%


def test_after_the_cooldown_probes_go_through_and_successes_close_it() -> None:
    breaker, seen = tripped()
    assert breaker.room(30) == 2
    assert breaker.allow(30) and breaker.allow(30)
    assert not breaker.allow(30)  # only two probes at once
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(False, 31)
    breaker.record(False, 31)
    assert breaker.state is BreakerState.CLOSED
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_a_failed_probe_opens_it_again_for_a_full_cooldown() -> None:
    breaker, _ = tripped()
    assert breaker.allow(30)
    breaker.record(True, 31)
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow(60)
    assert breaker.allow(61)


def test_calls_that_return_after_it_opened_change_nothing() -> None:
    breaker, _ = tripped()
    breaker.record(False, 1)
    assert breaker.state is BreakerState.OPEN and breaker.retry_at() == 30
