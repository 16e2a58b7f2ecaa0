"""Tenant limits and usage <-> protobuf: the admin API's TenantLimits and GetUsage's Usage."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence

from smsgw.api import convert
from smsgw.domain.errors import FieldViolation, ValidationFailed
from smsgw.domain.model import Tenant
from smsgw.domain.policy import QuietHours, TenantPolicy
from smsgw.domain.quota import DAY, PeriodUsage, SegmentQuota
from smsgw.proto import admin_pb2, sms_pb2

# The fields of TenantLimits an update_mask may name: TenantPolicy's, by the same names.
FIELDS = ("rate_per_second", "burst", "daily_segment_quota", "monthly_segment_quota", "weight",
          "quiet_hours")
MAX_WEIGHT = 1000
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def tenant_limits(tenant: Tenant, policy: TenantPolicy) -> admin_pb2.TenantLimits:
    quiet = policy.quiet_hours
    return admin_pb2.TenantLimits(
        tenant=tenant.name, tenant_id=str(tenant.id), rate_per_second=policy.rate_per_second,
        burst=policy.burst, daily_segment_quota=policy.daily_segment_quota,
        monthly_segment_quota=policy.monthly_segment_quota, weight=policy.weight,
        quiet_hours=admin_pb2.QuietHours(start=quiet.start.strftime("%H:%M"),
                                         end=quiet.end.strftime("%H:%M")) if quiet else None)


def updated_policy(current: TenantPolicy, limits: admin_pb2.TenantLimits,
                   mask: Sequence[str]) -> TenantPolicy:
    """The current policy with the masked fields (every field when none) taken from
    ``limits``; bad values are refused together, each naming its field."""
    unknown = [path for path in mask if path not in FIELDS]
    if unknown:
        raise ValidationFailed([FieldViolation("update_mask", f"unknown field {path!r}")
                                for path in unknown])
    wanted = set(mask or FIELDS)
    violations: list[FieldViolation] = []
    rate = limits.rate_per_second
    if not (rate >= 0 and rate < float("inf")):
        violations.append(FieldViolation("limits.rate_per_second", "must be 0 or more"))
    for name in ("burst", "daily_segment_quota", "monthly_segment_quota"):
        if getattr(limits, name) < 0:
            violations.append(FieldViolation(f"limits.{name}", "must be 0 or more"))
    # 0 is what an unset field reads as: the default weight.
    if not 0 <= limits.weight <= MAX_WEIGHT:
        violations.append(FieldViolation("limits.weight", f"must be from 1 to {MAX_WEIGHT}"))
    quiet = _quiet_hours(limits.quiet_hours, violations)
    if violations:
        raise ValidationFailed(violations)
    new = TenantPolicy(rate, limits.burst, limits.daily_segment_quota,
                       limits.monthly_segment_quota, limits.weight or 1, quiet)
    return dataclasses.replace(current, **{name: getattr(new, name) for name in wanted})


def _quiet_hours(hours: admin_pb2.QuietHours,
                 violations: list[FieldViolation]) -> QuietHours | None:
    if not hours.start and not hours.end:
        return None
    parsed = []
    for name in ("start", "end"):
        match = _CLOCK.match(getattr(hours, name))
        if match is None:
            violations.append(FieldViolation(f"limits.quiet_hours.{name}",
                                             'must be "HH:MM" (24-hour), with both set'))
        else:
            parsed.append(dt.time(int(match[1]), int(match[2])))
    if len(parsed) < 2:
        return None
    if parsed[0] == parsed[1]:
        violations.append(FieldViolation("limits.quiet_hours", "start and end must differ"))
        return None
    return QuietHours(parsed[0], parsed[1])


def usage(periods: Sequence[PeriodUsage], policy: TenantPolicy) -> sms_pb2.Usage:
    quota = SegmentQuota(policy.daily_segment_quota, policy.monthly_segment_quota)
    out = sms_pb2.Usage(rate_per_second=policy.rate_per_second,
                        burst=policy.effective_burst if policy.rate_per_second > 0 else 0)
    for period in periods:
        target = out.daily if period.period == DAY else out.monthly
        target.CopyFrom(sms_pb2.QuotaUsage(
            used_segments=period.used, limit_segments=quota.limit(period.period),
            period_start=convert.timestamp(period.starts_at),
            reset_time=convert.timestamp(period.resets_at)))
    return out
