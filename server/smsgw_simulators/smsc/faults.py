"""Injected refusals: a token-bucket rate limit and random throttling, queue-full, rejects."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from smsgw_simulators.smsc.codec import ESME_RINVDSTADR, ESME_RMSGQFUL, ESME_RTHROTTLED


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; starts full."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic,
                 ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens = burst
        self._last = clock()

    def take(self) -> bool:
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens >= 1:
            self._tokens = tokens - 1
            return True
        self._tokens = tokens
        return False



class Faults:
    """Decides, per submit, whether to refuse it and with which status and reason."""

    def __init__(self, rng: random.Random, *, throttle_rate: float, queue_full_rate: float,
                 reject_rate: float, max_tps: float, burst: float | None) -> None:
        self._rng = rng
        self._bucket = (TokenBucket(max_tps, burst or max(1.0, max_tps / 10))
                        if max_tps > 0 else None)
        self._rates = ((throttle_rate, ESME_RTHROTTLED, "throttled"),
                       (queue_full_rate, ESME_RMSGQFUL, "queue_full"),
                       (reject_rate, ESME_RINVDSTADR, "invalid_dest"))
        self._random = any(rate > 0 for rate, _status, _reason in self._rates)
        self.active = self._bucket is not None or self._random

    def draw(self) -> tuple[int, str] | None:
        """The token bucket first, then one draw split across the fault rates."""
        if self._bucket is not None and not self._bucket.take():
            return ESME_RTHROTTLED, "max_tps"
        if self._random:
            draw = self._rng.random()
            for rate, status, reason in self._rates:
                if draw < rate:
                    return status, reason
                draw -= rate
        return None
