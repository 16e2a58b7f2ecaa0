"""A circuit breaker per provider: stop calling a carrier that is failing.

Closed, it counts outcomes over a sliding *time* window (``window_seconds``,
kept as one bucket per second) and opens when more than ``failure_ratio`` of
the calls in it failed (once at least ``min_calls`` were seen), or after
``consecutive_failures`` in a row. Open, it refuses every call until
``cooldown_seconds`` have passed, then half-opens: up to ``half_open_probes``
calls may be out at once, and their outcomes are judged together, on the
same ratio, over ``probe_calls`` calls. It closes as soon as enough of them
succeeded that the ratio cannot go over, and re-opens as soon as too many
failed. So a carrier that fails half of its calls is not shut off for good
by a streak of bad luck (an unbroken run of successes would be needed), while
one that fails most calls stays open. Time is passed in: the class is pure.
"""

from __future__ import annotations

import enum
import math
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
    window_seconds: float = 60.0
    min_calls: int = 20
    failure_ratio: float = 0.5  # opens above this share of failures
    # How sure the breaker must be that the share is above the ratio: the
    # z-score of the Wilson interval's lower bound. Without it a carrier that
    # fails exactly half its calls crosses 50 % every few seconds by chance.
    confidence_z: float = 1.96
    consecutive_failures: int = 20
    cooldown_seconds: float = 30.0
    half_open_probes: int = 5  # probe calls out at once
    probe_calls: int = 10  # probe outcomes judged together

    def __post_init__(self) -> None:
        if not 0 < self.failure_ratio < 1:
            raise ValueError("breaker failure_ratio must be between 0 and 1")
        if self.window_seconds <= 0 or self.half_open_probes < 1 or self.probe_calls < 1:
            raise ValueError("breaker window_seconds, half_open_probes and probe_calls "
                             "must be positive")

    @property
    def failures_to_reopen(self) -> int:
        """Probe failures that put the ratio over the limit whatever the rest do."""
        return math.floor(self.probe_calls * self.failure_ratio) + 1

    @property
    def successes_to_close(self) -> int:
        return self.probe_calls - self.failures_to_reopen + 1


StateListener = Callable[["BreakerState"], None]


class _Window:
    """Calls and failures per second over the last ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._buckets: deque[list[int]] = deque()  # [second, calls, failures]
        self.calls = 0
        self.failures = 0

    def add(self, failed: bool, now: float) -> None:
        self._evict(now)
        second = int(now)
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += failed
        self.calls += 1
        self.failures += failed

    def clear(self) -> None:
        self._buckets.clear()
        self.calls = self.failures = 0

    def _evict(self, now: float) -> None:
        oldest = now - self._seconds
        while self._buckets and self._buckets[0][0] + 1 <= oldest:
            _, calls, failures = self._buckets.popleft()
            self.calls -= calls
            self.failures -= failures


def wilson_lower_bound(failures: int, calls: int, z: float) -> float:
    """The low end of the Wilson score interval for the failure share."""
    if calls == 0:
        return 0.0
    share = failures / calls
    z2 = z * z
    centre = share + z2 / (2 * calls)
    margin = z * math.sqrt(share * (1 - share) / calls + z2 / (4 * calls * calls))
    return (centre - margin) / (1 + z2 / calls)


class CircuitBreaker:
    def __init__(self, config: BreakerConfig, on_change: StateListener | None = None) -> None:
        self._config = config
        self._on_change = on_change
        self._window = _Window(config.window_seconds)
        self._streak = 0
        self._opened_at = 0.0
        self._probes_out = 0
        self._probe_successes = 0
        self._probe_failures = 0
        self.state = BreakerState.CLOSED

    def allow(self, now: float) -> bool:
        """Whether a call may go out now; in half-open this takes a probe slot."""
        if self.state is BreakerState.OPEN:
            if now - self._opened_at < self._config.cooldown_seconds:
                return False
            self._half_open()
        if self.state is BreakerState.HALF_OPEN:
            if self._probes_out >= self._probe_room():
                return False
            self._probes_out += 1
        return True

    def room(self, now: float) -> int:
        """How many calls could go out now (a large number while closed)."""
        if self.state is BreakerState.CLOSED:
            return 1 << 30
        if self.state is BreakerState.OPEN:
            ready = now - self._opened_at >= self._config.cooldown_seconds
            return min(self._config.half_open_probes, self._config.probe_calls) if ready else 0
        return max(0, self._probe_room() - self._probes_out)

    def retry_at(self) -> float:
        """When an open breaker will let a probe through (monotonic seconds)."""
        return self._opened_at + self._config.cooldown_seconds

    def record(self, failed: bool, now: float) -> None:
        if self.state is BreakerState.HALF_OPEN:
            self._judge_probe(failed, now)
            return
        if self.state is BreakerState.OPEN:
            return  # a call that left before the breaker opened
        self._window.add(failed, now)
        self._streak = self._streak + 1 if failed else 0
        if self._tripped():
            self._open(now)

    def _judge_probe(self, failed: bool, now: float) -> None:
        self._probes_out = max(0, self._probes_out - 1)
        if failed:
            self._probe_failures += 1
            if self._probe_failures >= self._config.failures_to_reopen:
                self._open(now)
            return
        self._probe_successes += 1
        if self._probe_successes >= self._config.successes_to_close:
            self._close()

    def _probe_room(self) -> int:
        """Probes may be out at once, but never more than are still to be judged."""
        judged = self._probe_successes + self._probe_failures
        return min(self._config.half_open_probes, self._config.probe_calls - judged)

    def _tripped(self) -> bool:
        c = self._config
        if self._streak >= c.consecutive_failures:
            return True
        calls = self._window.calls
        if calls < c.min_calls:
            return False
        return wilson_lower_bound(self._window.failures, calls, c.confidence_z) > c.failure_ratio

    def _half_open(self) -> None:
        self._probes_out = self._probe_successes = self._probe_failures = 0
        self._set(BreakerState.HALF_OPEN)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._set(BreakerState.OPEN)

    def _close(self) -> None:
        self._window.clear()
        self._streak = 0
        self._set(BreakerState.CLOSED)

    def _set(self, state: BreakerState) -> None:
        if state is not self.state:
            self.state = state
            if self._on_change is not None:
                self._on_change(state)
