"""A tenant's traffic policy: how fast it may submit, how much, its share, its quiet hours.

Zero means "no limit" for every limit, so a tenant nobody configured is
unlimited, as every tenant was before policies existed. Stored on the
tenant (``tenants`` table), changed at run time by the admin API, and read
by every replica through a short-lived cache (``services/policies.py``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window of the recipient's local time; it may cross midnight."""

    start: dt.time
    end: dt.time

    def contains(self, local: dt.time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True, slots=True)
class TenantPolicy:
    rate_per_second: float = 0.0
    burst: int = 0  # 0: one second's worth of the rate
    daily_segment_quota: int = 0
    monthly_segment_quota: int = 0
    weight: int = 1  # the tenant's share inside a priority lane
    quiet_hours: QuietHours | None = None  # marketing waits while it is quiet

    @property
    def effective_burst(self) -> int:
        return self.burst or max(1, int(self.rate_per_second))


UNLIMITED = TenantPolicy()

# Where a service reads a tenant's policy (the policy cache, in production).
PolicyOf = Callable[[uuid.UUID], TenantPolicy]


def unlimited(_tenant: uuid.UUID) -> TenantPolicy:
    """Every tenant unlimited: the policy source where none is configured."""
    return UNLIMITED
