"""Segment quotas: the UTC periods they count in, and what a refusal says.

A quota counts the segments of the messages a tenant had accepted in a UTC
day ('d') or calendar month ('m'). Zero means no quota. The count is kept by
the message store in the transaction that accepts the messages; this module
is the arithmetic around it, free of I/O.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass

from smsgw.domain.errors import QuotaExceeded, RateLimited
from smsgw.domain.policy import TenantPolicy

DAY, MONTH = "d", "m"
PERIOD_NAMES = {DAY: "daily", MONTH: "monthly"}


@dataclass(frozen=True, slots=True)
class SegmentQuota:
    daily: int = 0
    monthly: int = 0

    @classmethod
    def of(cls, policy: TenantPolicy) -> SegmentQuota | None:
        """The policy's quotas, or None when it has none (nothing is counted then)."""
        if policy.daily_segment_quota <= 0 and policy.monthly_segment_quota <= 0:
            return None
        return cls(policy.daily_segment_quota, policy.monthly_segment_quota)

    def limit(self, period: str) -> int:
        return self.daily if period == DAY else self.monthly


@dataclass(frozen=True, slots=True)
class PeriodUsage:
    period: str  # DAY or MONTH
    start: dt.date
    used: int

    @property
    def starts_at(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), dt.UTC)

    @property
    def resets_at(self) -> dt.datetime:
        return period_end(self.period, self.start)


@dataclass(frozen=True, slots=True)
class QuotaRefusal:
    """Items a store left out because they did not fit, and the period that refused them."""

    ids: frozenset[uuid.UUID]
    period: PeriodUsage
    limit: int


def period_start(period: str, now: dt.datetime) -> dt.date:
    day = now.astimezone(dt.UTC).date()
    return day if period == DAY else day.replace(day=1)


def period_end(period: str, start: dt.date) -> dt.datetime:
    if period == DAY:
        end = start + dt.timedelta(days=1)
    else:
        end = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return dt.datetime.combine(end, dt.time(), dt.UTC)


def room(quota: SegmentQuota,
         counts: list[PeriodUsage]) -> tuple[int | None, PeriodUsage | None]:
    """Segments that still fit (None: unlimited) and the period that binds first."""
    left: int | None = None
    binding: PeriodUsage | None = None
    # Monthly first: when both are as tight, the later reset is the honest one to report.
    for usage in sorted(counts, key=lambda u: u.period != MONTH):
        limit = quota.limit(usage.period)
        if limit > 0 and (left is None or limit - usage.used < left):
            left, binding = max(0, limit - usage.used), usage
    return left, binding


def fitting(segments: list[int], left: int | None) -> int:
    """How many of the items, in order, fit in ``left`` segments (a prefix: order is kept)."""
    if left is None:
        return len(segments)
    total = 0
    for count, size in enumerate(segments):
        total += size
        if total > left:
            return count
    return len(segments)


def quota_exceeded(tenant: uuid.UUID, refusal: QuotaRefusal,
                   now: dt.datetime) -> QuotaExceeded:
    usage = refusal.period
    name = PERIOD_NAMES[usage.period]
    reset = usage.resets_at
    return QuotaExceeded(
        f"the tenant's {name} quota of {refusal.limit} segments is used up "
        f"({usage.used} used); it resets at {reset.isoformat()}",
        retry_after_seconds=max(1.0, (reset - now).total_seconds()),
        subject=f"tenant:{tenant}", limit=f"{name}_segment_quota",
        metadata={"tenant_id": str(tenant), "period": name, "limit_segments": str(refusal.limit),
                  "used_segments": str(usage.used), "reset_time": _rfc3339(reset)})


def rate_limited(tenant: uuid.UUID, policy: TenantPolicy,
                 retry_after_seconds: float) -> RateLimited:
    retry = max(0.001, retry_after_seconds)
    return RateLimited(
        f"the tenant's rate limit of {policy.rate_per_second:g} messages per second "
        f"(burst {policy.effective_burst}) is reached; retry in {math.ceil(retry * 1000)} ms",
        retry_after_seconds=retry, subject=f"tenant:{tenant}", limit="rate_per_second",
        metadata={"tenant_id": str(tenant), "rate_per_second": f"{policy.rate_per_second:g}",
                  "burst": str(policy.effective_burst)})


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
