"""Who gets the next claim: lanes in priority order, tenants by weight inside a lane.

The relay knows how many messages the providers can take soon (its *room*)
and asks the outbox how much is due per (lane, tenant), capped at that room.
``allocate`` decides how many to lease from each pair:

1. Marketing, while it has a backlog, is promised ``marketing_min_share`` of
   the room, so a steady stream of OTPs can slow a campaign but never stop it.
   The fraction is rounded at random (0.1 of a room of 5 is one message half
   the time), so the promise holds on average even when every claim is small.
2. The rest goes to OTP first, then transactional, then marketing. A lane may
   be capped (``limits``): the relay lets marketing take only what the
   providers can take without filling the headroom kept for higher lanes.
3. Inside a lane the lane's count is shared by weighted water-filling: each
   tenant gets room in proportion to its weight, a tenant that needs less
   than its share gives the leftover to the others (so a claim is never short
   while work is due), and the units that do not divide evenly go to tenants
   drawn by their shares' fractions. The draw matters when claims are small
   (one slot freed at a time): a fixed tie-break would hand every
   single-message claim to the same tenant.

Fairness across several relay processes follows from the counts coming from
the shared database: each relay shares its claim the same way, so the sum
of their claims is shared that way too. Pure: the caller passes the random
source.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from smsgw.domain.lanes import Lane


@dataclass(frozen=True, slots=True)
class Backlog:
    """Due messages of one tenant in one lane (counted up to a cap), and its weight."""

    lane: Lane
    tenant_id: uuid.UUID
    due: int
    weight: int = 1


@dataclass(frozen=True, slots=True)
class Pick:
    """How many of a (lane, tenant)'s due messages to lease, oldest first."""

    lane: Lane
    tenant_id: uuid.UUID
    count: int


def guaranteed(room: int, share: float, rng: random.Random) -> int:
    """``room * share`` rounded up or down at random, so that it is right on average."""
    exact = max(0.0, room * share)
    whole = math.floor(exact)
    return min(room, whole + (1 if rng.random() < exact - whole else 0))


def allocate(room: int, backlog: Sequence[Backlog], *, marketing_min_share: float,
             rng: random.Random, limits: Mapping[Lane, int] | None = None) -> list[Pick]:
    """The picks that fill ``room`` (see the module's docstring); never more than is due."""
    limits = limits or {}
    by_lane: dict[Lane, list[Backlog]] = {lane: [] for lane in Lane}
    for item in backlog:
        if item.due > 0:
            by_lane[item.lane].append(item)
    due = {lane: sum(b.due for b in items) for lane, items in by_lane.items()}
    cap = {lane: min(due[lane], limits.get(lane, room)) for lane in Lane}
    reserved = min(due[Lane.MARKETING], guaranteed(room, marketing_min_share, rng))
    counts = dict.fromkeys(Lane, 0)
    left = room - reserved
    for lane in (Lane.OTP, Lane.TRANSACTIONAL):
        counts[lane] = max(0, min(cap[lane], left))
        left -= counts[lane]
    counts[Lane.MARKETING] = max(reserved, min(cap[Lane.MARKETING], reserved + left))
    picks: list[Pick] = []
    for lane in Lane:
        shares = water_fill(counts[lane], [(b.tenant_id, b.due, b.weight) for b in by_lane[lane]],
                            rng)
        picks.extend(Pick(lane, tenant, n) for tenant, n in shares.items() if n > 0)
    return picks


def water_fill(total: int, demands: Iterable[tuple[uuid.UUID, int, int]],
               rng: random.Random) -> dict[uuid.UUID, int]:
    """Shares ``total`` among (tenant, demand, weight) by weight; no one gets over its demand.

    The exact shares come from the water level (the share per unit of weight
    at which the total is used up); each tenant gets its share rounded down,
    and the units left over go to tenants drawn by their shares' fractions, so
    each tenant gets its exact share on average and never a unit more than
    its share rounded up.
    """
    wanting = [(tenant, demand, max(1, weight)) for tenant, demand, weight in demands
               if demand > 0]
    total = min(total, sum(d for _, d, _ in wanting))
    exact = _shares(total, wanting)
    given = {tenant: math.floor(x) for tenant, x in exact.items()}
    left = total - sum(given.values())
    fractions = {t: x - given[t] for t, x in exact.items() if x - given[t] > 1e-9}
    while left > 0:
        pool = list(fractions) or [t for t, d, _ in wanting if given[t] < d]
        (tenant,) = rng.choices(pool, weights=[fractions.get(t, 1.0) for t in pool])
        fractions.pop(tenant, None)
        given[tenant] += 1
        left -= 1
    return given


def _shares(total: int, wanting: list[tuple[uuid.UUID, int, int]]) -> dict[uuid.UUID, float]:
    """Each tenant's exact share: its demand if that is under the water level, else
    its weight times the level."""
    shares: dict[uuid.UUID, float] = {}
    left, weights = float(total), sum(w for _, _, w in wanting)
    ordered = sorted(wanting, key=lambda item: item[1] / item[2])
    for n, (tenant, demand, weight) in enumerate(ordered):
        if demand * weights <= left * weight:  # satisfied below the level
            shares[tenant] = float(demand)
            left -= demand
            weights -= weight
            continue
        level = left / weights
        shares.update({t: w * level for t, _, w in ordered[n:]})
        break
    return shares


@dataclass(slots=True)
class LaneTurns:
    """Which lane's waiter gets a provider's next token: the highest lane waiting,
    except that marketing, while it waits behind others, earns ``min_share`` of a
    turn per turn given and takes a turn once it has earned a whole one. So a
    flood of OTPs slows marketing to its guaranteed share, never to nothing."""

    min_share: float = 0.10
    credit: float = 0.0

    def next(self, waiting: Iterable[Lane]) -> Lane | None:
        lanes = set(waiting)
        if not lanes:
            return None
        top = min(lanes)
        if Lane.MARKETING not in lanes or top is Lane.MARKETING:
            return top
        self.credit = min(1.0, self.credit + self.min_share)
        if self.min_share > 0 and self.credit >= 1.0 - 1e-9:
            self.credit = 0.0
            return Lane.MARKETING
        return top
