"""Priority lanes: the order in which waiting traffic gets a provider's capacity.

A message's traffic class decides its lane. Wherever messages wait for
capacity (the outbox claim, a provider's token bucket and in-flight slots,
retries) a lower lane number goes first, so a login code never waits behind
a marketing blast. The numbers are stored in ``outbox.lane``.
"""

from __future__ import annotations

import enum

from smsgw.domain.routing import DEFAULT_TRAFFIC_CLASS


class Lane(enum.IntEnum):
    OTP = 0
    TRANSACTIONAL = 1
    MARKETING = 2


LANE_OF_CLASS = _BY_CLASS = {"otp": Lane.OTP, "transactional": Lane.TRANSACTIONAL,
             "marketing": Lane.MARKETING}


def lane_of(traffic_class: str) -> Lane:
    return _BY_CLASS.get(traffic_class or DEFAULT_TRAFFIC_CLASS, Lane.TRANSACTIONAL)
