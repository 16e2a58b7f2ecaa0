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
    return Claimed(interleaved(claimed),
                   sum(b.due for b in backlog) > sum(p.count for p in picks))


def interleaved(messages: list[OutboundMessage]) -> list[OutboundMessage]:
    """Highest lane first and, inside a lane, the tenants' messages spread evenly
    through the claim (each at its fraction of its tenant's share), so that the
    sends of one claim, which reach the providers in this order, do not serve
    one tenant's block before the next's."""
    groups: dict[tuple[Lane, object], list[OutboundMessage]] = {}
    for message in messages:
        groups.setdefault((lane_of(message.traffic_class), message.tenant_id), []).append(message)
    keyed = [((lane, (n + 0.5) / len(group)), message)
             for (lane, _), group in groups.items() for n, message in enumerate(group)]
    keyed.sort(key=lambda item: item[0])
    return [message for _, message in keyed]


_RNG = random.Random()
