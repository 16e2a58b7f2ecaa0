"""Each tenant's rate limit, at the API's door: refuse, split or wait.

A unary send over the rate is refused (``RateLimited``, with when to retry);
a batch gets as many items as fit now and the rest refused; a bulk stream
waits for room before it reads on, so the client is slowed by flow control
rather than answered with errors. Tenants without a rate cost nothing here.

The shared state is in Redis (``TenantRateLimiter``). When Redis cannot be
reached the gate **fails open**: it admits, counts the messages in
``sms_rate_limit_bypassed_total``, logs at most every ``LOG_EVERY_SECONDS``,
and leaves Redis alone for ``bypass_seconds`` before asking again, so an
outage costs neither errors nor a failed round trip per call. Redis is a
soft dependency already (the idempotency cache); quotas, which must be
exact, are counted in Postgres and do not depend on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable

from smsgw import metrics
from smsgw.domain.errors import RateLimited, Unavailable
from smsgw.domain.policy import PolicyOf, TenantPolicy
from smsgw.domain.quota import rate_limited
from smsgw.ports import TenantRateLimiter

log = logging.getLogger(__name__)
LOG_EVERY_SECONDS = 30.0


class RateGate:
    def __init__(self, limiter: TenantRateLimiter | None, policy_of: PolicyOf, *,
                 bypass_seconds: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limiter = limiter
        self._policy_of = policy_of
        self._bypass_seconds = bypass_seconds
        self._clock = clock
        self._bypass_until = float("-inf")
        self._logged_at = float("-inf")

    async def check(self, tenant: uuid.UUID) -> None:
        """One message: admitted, or ``RateLimited``."""
        _granted, refusal = await self.split(tenant, 1)
        if refusal is not None:
            raise refusal

    async def split(self, tenant: uuid.UUID, count: int) -> tuple[int, RateLimited | None]:
        """How many of ``count`` messages may go now (the first ones), and the refusal
        the others get."""
        policy = self._policy_of(tenant)
        if policy.rate_per_second <= 0 or count <= 0:
            return count, None
        taken = await self._take(tenant, policy, count)
        if taken is None:
            return count, None
        granted, wait = taken
        if granted == count:
            return count, None
        metrics.TENANT_LIMITED.labels("rate", "refused").inc(count - granted)
        return granted, rate_limited(tenant, policy, wait)

    async def wait(self, tenant: uuid.UUID, count: int) -> None:
        """Returns once ``count`` messages fit the tenant's rate (a bulk stream's pace)."""
        left, slowed = count, False
        while left > 0:
            policy = self._policy_of(tenant)  # re-read: a changed limit applies mid-stream
            if policy.rate_per_second <= 0:
                return
            taken = await self._take(tenant, policy, left)
            if taken is None:
                return
            granted, wait = taken
            left -= granted
            if left > 0:
                if not slowed:
                    metrics.TENANT_LIMITED.labels("rate", "slowed").inc(left)
                    slowed = True
                # Wait for a useful bite, not for every single permit.
                bite = min(left, policy.effective_burst)
                await asyncio.sleep(wait + (bite - 1) / policy.rate_per_second)

    async def _take(self, tenant: uuid.UUID, policy: TenantPolicy,
                    count: int) -> tuple[int, float] | None:
        """(granted, wait), or None when the limiter is away and the gate fails open."""
        if self._limiter is None:  # no limiter configured: nothing to enforce with
            return None
        now = self._clock()
        if now < self._bypass_until:
            metrics.RATE_LIMIT_BYPASSED.inc(count)
            return None
        try:
            return await self._limiter.take(tenant, policy.rate_per_second,
                                            policy.effective_burst, count)
        except Unavailable as exc:
            self._bypass_until = now + self._bypass_seconds
            metrics.RATE_LIMIT_BYPASSED.inc(count)
            if now - self._logged_at >= LOG_EVERY_SECONDS:
                self._logged_at = now
                log.warning("tenant rate limits not enforced: the limiter is unavailable; "
                            "admitting (fail open)", extra={"error": exc.message})
            return None
