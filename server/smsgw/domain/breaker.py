"""A circuit breaker per provider: stop calling a carrier that is failing.

Closed, it counts outcomes over a sliding window of the last ``window`` calls
and opens when the failure ratio passes ``failure_ratio`` (once at least
``min_calls`` were seen) or after ``consecutive_failures`` in a row. Open, it
refuses every call until ``cooldown_seconds`` have passed, then half-opens:
up to ``half_open_probes`` calls may go through at once, and
``probes_to_close`` successes in a row close it again, while one failure
re-opens it. Time is passed in, so the class is pure and testable.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class BreakerState(enum.IntEnum):
    """Numbered as the ``circuit_breaker_state`` gauge reports them."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window: int = 50
    min_calls: int = 20
    failure_ratio: float = 0.5
    consecutive_failures: int = 10
    cooldown_seconds: float = 30.0
    half_open_probes: int = 3
    probes_to_close: int = 3


StateListener = Callable[["BreakerState"], None]


class CircuitBreaker:
    def __init__(self, config: BreakerConfig, on_change: StateListener | None = None) -> None:
        self._config = config
        self._on_change = on_change
        self._outcomes: deque[bool] = deque(maxlen=config.window)  # True = failure
        self._failures = 0
        self._streak = 0
        self._opened_at = 0.0
        self._probes_out = 0
        self._probe_successes = 0
        self.state = BreakerState.CLOSED

    def allow(self, now: float) -> bool:
        """Whether a call may go out now; in half-open this takes a probe slot."""
        if self.state is BreakerState.OPEN:
            if now - self._opened_at < self._config.cooldown_seconds:
                return False
            self._set(BreakerState.HALF_OPEN)
            self._probes_out = self._probe_successes = 0
        if self.state is BreakerState.HALF_OPEN:
            if self._probes_out >= self._config.half_open_probes:
                return False
            self._probes_out += 1
        return True

    def room(self, now: float) -> int:
        """How many calls could go out now (a large number while closed)."""
        if self.state is BreakerState.CLOSED:
            return 1 << 30
        if self.state is BreakerState.OPEN:
            ready = now - self._opened_at >= self._config.cooldown_seconds
            return self._config.half_open_probes if ready else 0
        return max(0, self._config.half_open_probes - self._probes_out)

    def retry_at(self) -> float:
        """When an open breaker will let a probe through (monotonic seconds)."""
        return self._opened_at + self._config.cooldown_seconds

    def record(self, failed: bool, now: float) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._probes_out = max(0, self._probes_out - 1)
            if failed:
                self._open(now)
                return
            self._probe_successes += 1
            if self._probe_successes >= self._config.probes_to_close:
                self._reset()
            return
        if self.state is BreakerState.OPEN:
            return  # a call that left before the breaker opened
        self._count(failed)
        if self._tripped():
            self._open(now)

    def _count(self, failed: bool) -> None:
        if len(self._outcomes) == self._outcomes.maxlen and self._outcomes[0]:
            self._failures -= 1
        self._outcomes.append(failed)
        self._failures += failed
        self._streak = self._streak + 1 if failed else 0

    def _tripped(self) -> bool:
        c = self._config
        if self._streak >= c.consecutive_failures:
            return True
        seen = len(self._outcomes)
        return seen >= c.min_calls and self._failures / seen >= c.failure_ratio

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._set(BreakerState.OPEN)

    def _reset(self) -> None:
        self._outcomes.clear()
        self._failures = self._streak = 0
        self._set(BreakerState.CLOSED)

    def _set(self, state: BreakerState) -> None:
        if state is not self.state:
            self.state = state
            if self._on_change is not None:
                self._on_change(state)
