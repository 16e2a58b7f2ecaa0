"""The relay's quiet-hours hold: marketing waits while its recipient's quiet hours last.

A tenant's window (``TenantPolicy.quiet_hours``) is read per message from
the policy cache (a dict lookup), and the opening is computed in the domain
(``domain/quiet_hours.py``). OTP and transactional traffic is never held.
"""

from __future__ import annotations

import datetime as dt

from smsgw.domain.lanes import Lane, lane_of
from smsgw.domain.quiet_hours import opens_at
from smsgw.domain.records import OutboundMessage
from smsgw.services.policies import PolicyCache


class QuietHold:
    """``Relay``'s hold hook: None (may leave now) or when the message may leave."""

    def __init__(self, policies: PolicyCache, fallback_zone: str = "UTC") -> None:
        self._policies = policies
        self._fallback = fallback_zone

    def __call__(self, message: OutboundMessage) -> dt.datetime | None:
        if lane_of(message.traffic_class) is not Lane.MARKETING:
            return None
        window = self._policies.policy(message.tenant_id).quiet_hours
        if window is None:
            return None
        return opens_at(message.to, window, dt.datetime.now(dt.UTC), self._fallback)
