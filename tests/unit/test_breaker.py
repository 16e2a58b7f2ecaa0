"""The circuit breaker's transitions, driven by an explicit clock."""

from __future__ import annotations

import random

import pytest

from smsgw.domain.breaker import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    wilson_lower_bound,
)

# confidence_z=0: the plain share decides, so a handful of calls can show each rule.
CONFIG = BreakerConfig(window_seconds=60, min_calls=4, failure_ratio=0.5, confidence_z=0,
                       consecutive_failures=3, cooldown_seconds=30, half_open_probes=2,
                       probe_calls=4)


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


def test_a_failure_ratio_above_the_limit_opens_it_without_a_streak() -> None:
    breaker = CircuitBreaker(CONFIG)
    for failed in (True, False, True, False, True):  # 3 of 5 failed, never 3 in a row
        breaker.record(failed, 0)
    assert breaker.state is BreakerState.OPEN


def test_exactly_the_limit_does_not_open_it() -> None:
    breaker = CircuitBreaker(CONFIG)
    for failed in (True, False, True, False):  # 50%: not above 50%
        breaker.record(failed, 0)
    assert breaker.state is BreakerState.CLOSED


def test_too_few_calls_never_open_it_on_the_ratio() -> None:
    breaker = CircuitBreaker(CONFIG)
    for failed in (True, False, True):
        breaker.record(failed, 0)
    assert breaker.state is BreakerState.CLOSED


def test_old_outcomes_slide_out_of_the_time_window() -> None:
    config = BreakerConfig(window_seconds=60, min_calls=4, failure_ratio=0.5, confidence_z=0,
                           consecutive_failures=100)
    breaker = CircuitBreaker(config)
    for failed in (True, True, False):
        breaker.record(failed, 0)
    for now in (61, 62, 63, 64):  # the failures at t=0 have left the window
        breaker.record(now == 61, now)
    assert breaker.state is BreakerState.CLOSED
    breaker.record(True, 65)
    breaker.record(True, 65)  # 3 of 6 within the last minute: not above half
    assert breaker.state is BreakerState.CLOSED
    breaker.record(True, 66)
    assert breaker.state is BreakerState.OPEN


def test_after_the_cooldown_probes_go_through_and_enough_successes_close_it() -> None:
    breaker, seen = tripped()
    assert breaker.room(30) == 2
    assert breaker.allow(30) and breaker.allow(30)
    assert not breaker.allow(30)  # only two probes at once
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.record(True, 31)  # one failure of four allowed (2 failures would be 50%... not above)
    breaker.record(False, 31)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow(31) and breaker.allow(31)
    breaker.record(False, 31)
    assert breaker.state is BreakerState.CLOSED  # 2 of 4 succeeded: cannot go above 50%
    assert seen == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_too_many_failed_probes_open_it_again_for_a_full_cooldown() -> None:
    breaker, _ = tripped()
    assert breaker.allow(30) and breaker.allow(30)
    breaker.record(True, 31)
    assert breaker.state is BreakerState.HALF_OPEN  # one failure alone decides nothing
    breaker.record(True, 31)
    assert breaker.allow(31)
    breaker.record(True, 31)
    assert breaker.state is BreakerState.OPEN  # 3 of 4 failed: above 50% whatever comes
    assert not breaker.allow(60)
    assert breaker.allow(61)


def test_calls_that_return_after_it_opened_change_nothing() -> None:
    breaker, _ = tripped()
    breaker.record(False, 1)
    assert breaker.state is BreakerState.OPEN and breaker.retry_at() == 30


def test_by_default_the_share_must_be_above_the_limit_with_confidence() -> None:
    breaker = CircuitBreaker(BreakerConfig(min_calls=20, consecutive_failures=100))
    for n in range(40):  # 55 %, spread evenly: above half, but within chance for a 50 % carrier
        breaker.record((n + 1) * 11 // 20 > n * 11 // 20, n * 0.1)
    assert breaker.state is BreakerState.CLOSED
    for n in range(40, 60):  # now 31 of 60, then every call failing
        breaker.record(True, n * 0.1)
    assert breaker.state is BreakerState.OPEN
    assert wilson_lower_bound(31, 60, 1.96) < 0.5 < wilson_lower_bound(42, 60, 1.96)


def test_the_seeds_defaults_judge_ten_probes_on_the_same_ratio() -> None:
    config = BreakerConfig()
    assert (config.window_seconds, config.failure_ratio) == (60, 0.5)
    assert config.failures_to_reopen == 6 and config.successes_to_close == 5


def test_a_carrier_failing_half_its_calls_keeps_carrying() -> None:
    """At 50 % failures the old rules (a count window, three successes in a row to close)
    shut the carrier off most of the time; judged on the share, with confidence, and
    closed on the probes' share, it carries most of the time. One above it does not."""
    rng = random.Random(7)
    breaker = CircuitBreaker(BreakerConfig(cooldown_seconds=30))
    now, allowed, calls = 0.0, 0, 0
    while now < 3600:  # an hour at 10 calls a second
        calls += 1
        if breaker.allow(now):
            allowed += 1
            breaker.record(rng.random() < 0.5, now)
        now += 0.1
    assert allowed / calls > 0.5  # it carried traffic most of the time


def test_a_carrier_failing_most_calls_is_kept_off() -> None:
    rng = random.Random(7)
    breaker = CircuitBreaker(BreakerConfig(cooldown_seconds=30))
    now, allowed, calls = 0.0, 0, 0
    while now < 3600:
        calls += 1
        if breaker.allow(now):
            allowed += 1
            breaker.record(rng.random() < 0.8, now)
        now += 0.1
    assert allowed / calls < 0.1


@pytest.mark.parametrize("bad", [{"failure_ratio": 0}, {"failure_ratio": 1},
                                 {"window_seconds": 0}, {"probe_calls": 0}])
def test_nonsense_settings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="breaker"):
        BreakerConfig(**bad)  # type: ignore[arg-type]
