"""RateGate on the in-memory limiter: refuse, split, wait, and fail open."""

from __future__ import annotations

import uuid

from smsgw import metrics
from smsgw.adapters.memory import MemoryTenantRateLimiter
from smsgw.domain.errors import RateLimited, Unavailable
from smsgw.domain.policy import UNLIMITED, TenantPolicy
from smsgw.services.admission import RateGate

TENANT = uuid.uuid4()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Away:
    calls = 0

    async def take(self, tenant: uuid.UUID, rate: float, burst: int,
                   count: int) -> tuple[int, float]:
        self.calls += 1
        raise Unavailable("redis is away")


def gate(policy: TenantPolicy, clock: Clock) -> RateGate:
    return RateGate(MemoryTenantRateLimiter(clock), lambda _t: policy, clock=clock)


async def test_an_unlimited_tenant_never_touches_the_limiter() -> None:
    away = Away()
    admitted = RateGate(away, lambda _t: UNLIMITED)
    assert await admitted.split(TENANT, 500) == (500, None)
    await admitted.wait(TENANT, 500)
    assert away.calls == 0


async def test_a_batch_gets_what_fits_and_the_rest_one_refusal() -> None:
    clock = Clock()
    limited = gate(TenantPolicy(rate_per_second=2, burst=3), clock)
    granted, refusal = await limited.split(TENANT, 5)
    assert granted == 3 and isinstance(refusal, RateLimited)
    assert 0 < refusal.retry_after_seconds <= 0.5
    assert refusal.metadata["burst"] == "3" and refusal.subject == f"tenant:{TENANT}"
    clock.now += 0.5
    await limited.check(TENANT)  # one more has fitted meanwhile


async def test_waiting_admits_everything_at_the_rate() -> None:
    limiter = MemoryTenantRateLimiter()  # the real clock: the gate really sleeps (a few ms)
    limited = RateGate(limiter, lambda _t: TenantPolicy(rate_per_second=1000, burst=2))
    await limited.wait(TENANT, 6)  # nothing is refused
    granted, wait = await limiter.take(TENANT, 1000, 2, 3)
    assert granted < 3 and wait > 0  # the wait took its permits from the same bucket


async def test_redis_away_fails_open_counts_and_backs_off() -> None:
    clock, away = Clock(), Away()
    limited = RateGate(away, lambda _t: TenantPolicy(rate_per_second=1, burst=1), clock=clock)
    before = metrics.RATE_LIMIT_BYPASSED._value.get()
    assert await limited.split(TENANT, 3) == (3, None)
    await limited.check(TENANT)
    await limited.wait(TENANT, 2)
    assert away.calls == 1  # within a second of the failure, Redis is left alone
    clock.now += 1.5
    await limited.check(TENANT)
    assert away.calls == 2
    assert metrics.RATE_LIMIT_BYPASSED._value.get() - before == 7
