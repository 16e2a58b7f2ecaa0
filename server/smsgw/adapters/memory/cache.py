"""In-memory idempotency cache and rate limiter: Redis's part, for one process."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence


class MemoryIdempotencyCache:
    def __init__(self) -> None:
        self._values: dict[tuple[uuid.UUID, str], str] = {}

    async def claim(self, tenant: uuid.UUID,
                    items: Sequence[tuple[str, str]]) -> list[str | None]:
        taken: list[str | None] = []
        for key, value in items:
            previous = self._values.setdefault((tenant, key), value)
            taken.append(None if previous is value else previous)
        return taken

    async def release(self, tenant: uuid.UUID, keys: Sequence[str]) -> None:
        for key in keys:
            self._values.pop((tenant, key), None)


class MemoryRateLimiter:
    """A token bucket on this process's clock (Redis's clock, in the real one)."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate, self._burst = rate, max(1, burst)
        self._tokens, self._at = float(self._burst), time.monotonic()

    async def acquire(self, max_wait_seconds: float) -> float | None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / self._rate

    def room(self, now: float) -> int:
        return 1 << 30


class MemoryTenantRateLimiter:
    """The same GCRA as adapters/redis_tenant_rate.py, on this process's clock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[uuid.UUID, float] = {}

    async def take(self, tenant: uuid.UUID, rate: float, burst: int,
                   count: int) -> tuple[int, float]:
        if count <= 0:
            return 0, 0.0
        now, interval, burst = self._clock(), 1 / rate, max(1, burst)
        tat = max(now, self._tat.get(tenant, now))
        granted = max(0, min(count, math.floor((now + burst * interval - tat) / interval + 1e-9)))
        tat += granted * interval
        self._tat[tenant] = tat
        wait = 0.0 if granted == count else max(0.0, tat + interval - burst * interval - now)
        return granted, wait
