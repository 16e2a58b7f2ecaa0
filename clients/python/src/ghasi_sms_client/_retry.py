"""When to retry, and how long to wait: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

import grpc

# Safe to retry: the call did not reach the server, or the server asks for it.
# Sends are safe too, because a retry reuses the call's idempotency key.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 0.1
    cap_seconds: float = 5.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)  # jitter, not secrets

    def should_retry(self, code: grpc.StatusCode, attempt: int) -> bool:
        return code in RETRYABLE and attempt < self.max_attempts
