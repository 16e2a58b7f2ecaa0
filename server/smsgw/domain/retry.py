"""Retry policy: exponential backoff with full jitter, bounded by attempts and age."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 300.0

    def delay_ms(self, attempt: int, rng: random.Random) -> int | None:
        """Delay before the next attempt after ``attempt`` failed; None when spent."""
        if attempt >= self.max_attempts:
            return None
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1))
        return int(rng.uniform(0, ceiling) * 1000)
