"""Claiming from the outbox by lane and tenant (the policy is domain/fairness.py).

A claim is two statements: the due backlog per (lane, tenant), counted up to
the claim's size, then the lease of what ``allocate`` picked from it. Two
round trips instead of one, so that the policy is plain Python that runs the
same against Postgres and the in-memory fake and is tested on its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from smsgw.domain.fairness import allocate
from smsgw.domain.lanes import Lane, lane_of
from smsgw.domain.records import OutboundMessage
from smsgw.ports import Outbox


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a claim leased (highest lane first), and whether more was due than it took."""

    messages: list[OutboundMessage] = field(default_factory=list)
    held_back: bool = False


async def claim_due(outbox: Outbox, owner: str, room: int, lease_seconds: float, *,
                    marketing_room: int | None = None, marketing_min_share: float = 0.10,
                    rng: random.Random | None = None) -> Claimed:
    """Leases up to ``room`` due messages, lanes in order and tenants by weight.

    ``marketing_room`` caps the marketing lane below ``room`` (the providers'
    headroom for higher lanes), except for its guaranteed share.
    """
    if room <= 0:
        return Claimed()
    backlog = await outbox.backlog(room)
    if not backlog:
        return Claimed()
    limits = None if marketing_room is None else {Lane.MARKETING: max(0, marketing_room)}
    picks = allocate(room, backlog, marketing_min_share=marketing_min_share,
                     rng=rng or _RNG, limits=limits)
    claimed = await outbox.claim(owner, picks, lease_seconds)
    claimed.sort(key=lambda m: lane_of(m.traffic_class))
    return Claimed(claimed, sum(b.due for b in backlog) > sum(p.count for p in picks))


_RNG = random.Random()
