"""The claim's allocation: lane order, marketing's guaranteed share, weighted fairness."""

from __future__ import annotations

import collections
import random
import uuid

import pytest

from smsgw.domain.fairness import Backlog, Pick, allocate, guaranteed, water_fill
from smsgw.domain.lanes import Lane

A, B, C = (uuid.UUID(int=n) for n in (1, 2, 3))


def counts(picks: list[Pick]) -> dict[tuple[Lane, uuid.UUID], int]:
    return {(p.lane, p.tenant_id): p.count for p in picks}


def test_higher_lanes_fill_the_room_first() -> None:
    backlog = [Backlog(Lane.MARKETING, A, 100), Backlog(Lane.TRANSACTIONAL, B, 30),
               Backlog(Lane.OTP, C, 20)]
    picks = allocate(60, backlog, marketing_min_share=0.0, rng=random.Random(1))
    assert counts(picks) == {(Lane.OTP, C): 20, (Lane.TRANSACTIONAL, B): 30,
                             (Lane.MARKETING, A): 10}


def test_marketing_keeps_its_guaranteed_share_while_it_has_a_backlog() -> None:
    backlog = [Backlog(Lane.MARKETING, A, 1000), Backlog(Lane.OTP, B, 1000)]
    picks = allocate(100, backlog, marketing_min_share=0.1, rng=random.Random(1))
    assert counts(picks) == {(Lane.OTP, B): 90, (Lane.MARKETING, A): 10}
    # Without a marketing backlog the whole room is the higher lanes'.
    picks = allocate(100, backlog[1:], marketing_min_share=0.1, rng=random.Random(1))
    assert counts(picks) == {(Lane.OTP, B): 100}


def test_the_share_holds_on_average_for_claims_of_one() -> None:
    rng = random.Random(7)
    backlog = [Backlog(Lane.MARKETING, A, 5), Backlog(Lane.OTP, B, 5)]
    got = collections.Counter(p.lane for _ in range(2000)
                              for p in allocate(1, backlog, marketing_min_share=0.1, rng=rng))
    assert got[Lane.OTP] + got[Lane.MARKETING] == 2000
    assert 150 <= got[Lane.MARKETING] <= 250


def test_a_lane_limit_caps_marketing_but_not_its_guarantee() -> None:
    backlog = [Backlog(Lane.MARKETING, A, 500)]
    picks = allocate(100, backlog, marketing_min_share=0.1, rng=random.Random(1),
                     limits={Lane.MARKETING: 0})
    assert counts(picks) == {(Lane.MARKETING, A): 10}
    picks = allocate(100, backlog, marketing_min_share=0.1, rng=random.Random(1),
                     limits={Lane.MARKETING: 60})
    assert counts(picks) == {(Lane.MARKETING, A): 60}


def test_tenants_share_a_lane_by_weight_and_leftovers_go_to_the_others() -> None:
    rng = random.Random(3)
    assert water_fill(90, [(A, 1000, 1), (B, 1000, 2)], rng) == {A: 30, B: 60}
    # B needs only 5: the rest of its share goes to A and C.
    assert water_fill(95, [(A, 1000, 1), (B, 5, 1), (C, 1000, 1)], rng) == {A: 45, B: 5, C: 45}
    assert water_fill(10, [(A, 3, 1), (B, 4, 1)], rng) == {A: 3, B: 4}  # less due than room


def test_small_claims_rotate_between_tenants_by_weight() -> None:
    rng = random.Random(5)
    got: collections.Counter[uuid.UUID] = collections.Counter()
    for _ in range(3000):
        for tenant, n in water_fill(1, [(A, 100, 1), (B, 100, 2)], rng).items():
            got[tenant] += n
    assert got[A] + got[B] == 3000 and 850 <= got[A] <= 1150


@pytest.mark.parametrize("seed", range(200))
def test_property_picks_fill_the_room_within_what_is_due(seed: int) -> None:
    rng = random.Random(seed)
    tenants = [uuid.UUID(int=n) for n in range(1, rng.randint(2, 8))]
    backlog = [Backlog(rng.choice(list(Lane)), t, rng.randint(0, 50), rng.randint(1, 5))
               for t in tenants for _ in range(rng.randint(1, 2))]
    merged: dict[tuple[Lane, uuid.UUID], Backlog] = {}
    for b in backlog:
        merged.setdefault((b.lane, b.tenant_id), b)
    backlog = list(merged.values())
    room = rng.randint(0, 200)
    share = rng.choice([0.0, 0.1, 0.5])
    picks = allocate(room, backlog, marketing_min_share=share, rng=rng)
    got = counts(picks)
    due = {(b.lane, b.tenant_id): b.due for b in backlog}
    assert all(0 < n <= due[key] for key, n in got.items())
    assert sum(got.values()) == min(room, sum(due.values()))  # never short while work is due
    lane_due = {lane: sum(d for (ln, _), d in due.items() if ln is lane) for lane in Lane}
    lane_got = {lane: sum(n for (ln, _), n in got.items() if ln is lane) for lane in Lane}
    # A lower lane is served only when every higher lane got all it had due, except
    # marketing's guarantee, which is at most its share rounded up.
    promised = min(lane_due[Lane.MARKETING], int(room * share) + 1)
    if lane_got[Lane.MARKETING] > promised:
        assert lane_got[Lane.OTP] == lane_due[Lane.OTP]
        assert lane_got[Lane.TRANSACTIONAL] == lane_due[Lane.TRANSACTIONAL]
    if lane_got[Lane.TRANSACTIONAL] > 0:
        assert lane_got[Lane.OTP] == lane_due[Lane.OTP] or lane_got[Lane.MARKETING] > 0
    # Weighted water-filling: a tenant short of its demand got no less (by weight)
    # than any other tenant in its lane, give or take a unit on each side (rounding).
    for lane in Lane:
        items = [b for b in backlog if b.lane is lane and b.due > 0]
        for short in items:
            have = got.get((lane, short.tenant_id), 0)
            if have >= short.due:
                continue
            for other in items:
                theirs = got.get((lane, other.tenant_id), 0)
                assert (have + 1) / short.weight >= (theirs - 1) / other.weight - 1e-9


def test_guaranteed_never_exceeds_the_room() -> None:
    rng = random.Random(0)
    assert all(guaranteed(3, 0.99, rng) <= 3 for _ in range(100))
    assert guaranteed(0, 0.1, rng) == 0
