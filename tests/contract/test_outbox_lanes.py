"""Outbox claims by lane and tenant, against Postgres and the fake alike.

The policy is domain/fairness.py (tested on its own in tests/unit); here the
stores must count the backlog and lease exactly what it picked: lanes in
order, marketing's share, tenants by their weight, oldest due first.
"""

from __future__ import annotations

import collections
import random
import uuid

from smsgw.app import Stores
from smsgw.domain.fairness import Backlog, Pick
from smsgw.domain.lanes import Lane
from smsgw.domain.policy import TenantPolicy
from smsgw.services.claims import claim_due
from tests.contract.conftest import new_tenant, submission


async def queue(stores: Stores, tenant: uuid.UUID, count: int, traffic_class: str,
                start: int = 0) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    await stores.messages.insert(tenant, ids, [submission(start + n, traffic_class=traffic_class)
                                               for n in range(count)])
    return ids


async def set_weight(stores: Stores, tenant: uuid.UUID, weight: int) -> None:
    assert await stores.tenants.set_policy(tenant, TenantPolicy(weight=weight))


async def claim(stores: Stores, room: int, share: float = 0.0, **options: int
                ) -> collections.Counter[tuple[str, uuid.UUID]]:
    claimed = await claim_due(stores.outbox, "relay", room, 60, marketing_min_share=share,
                              rng=random.Random(0), **options)
    return collections.Counter((m.traffic_class, m.tenant_id) for m in claimed.messages)


async def test_the_backlog_counts_due_work_per_lane_and_tenant_up_to_the_cap(
        store_ports: Stores) -> None:
    a, b = await new_tenant(store_ports), await new_tenant(store_ports)
    await set_weight(store_ports, b, 3)
    await queue(store_ports, a, 7, "marketing")
    await queue(store_ports, a, 2, "otp", start=100)
    await queue(store_ports, b, 4, "marketing")
    backlog = await store_ports.outbox.backlog(5)
    assert sorted(backlog, key=lambda x: (x.lane, x.tenant_id != a)) == [
        Backlog(Lane.OTP, a, 2, 1), Backlog(Lane.MARKETING, a, 5, 1),
        Backlog(Lane.MARKETING, b, 4, 3)]
    await store_ports.outbox.claim("relay", [Pick(Lane.MARKETING, b, 4)], 60)
    assert {(x.lane, x.tenant_id) for x in await store_ports.outbox.backlog(5)} == {
        (Lane.OTP, a), (Lane.MARKETING, a)}  # leased rows are not due


async def test_a_claim_serves_otp_then_transactional_then_marketing(store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    marketing = await queue(store_ports, tenant, 5, "marketing")  # the oldest
    await queue(store_ports, tenant, 5, "transactional", start=10)
    otp = await queue(store_ports, tenant, 5, "otp", start=20)
    assert await claim(store_ports, 5) == {("otp", tenant): 5}
    assert await claim(store_ports, 7) == {("transactional", tenant): 5, ("marketing", tenant): 2}
    rest = await claim_due(store_ports.outbox, "relay", 10, 60)
    assert {m.id for m in rest.messages} == set(marketing[2:]) and not set(otp) & {
        m.id for m in rest.messages}


async def test_marketing_keeps_its_share_however_much_otp_waits(store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    await queue(store_ports, tenant, 40, "marketing")
    await queue(store_ports, tenant, 40, "otp", start=100)
    assert await claim(store_ports, 20, share=0.1) == {("otp", tenant): 18,
                                                        ("marketing", tenant): 2}
    # Capped to nothing (no headroom left for marketing), the share still goes through.
    assert await claim(store_ports, 10, share=0.1, marketing_room=0) == {
        ("otp", tenant): 9, ("marketing", tenant): 1}


async def test_tenants_share_a_lane_by_weight_whoever_queued_first(store_ports: Stores) -> None:
    a, b = await new_tenant(store_ports), await new_tenant(store_ports)
    await set_weight(store_ports, b, 2)
    await queue(store_ports, a, 100, "marketing")  # A's backlog is older
    await queue(store_ports, b, 100, "marketing")
    assert await claim(store_ports, 30) == {("marketing", a): 10, ("marketing", b): 20}


async def test_what_a_small_tenant_leaves_goes_to_the_others(store_ports: Stores) -> None:
    a, b, c = [await new_tenant(store_ports) for _ in range(3)]
    await queue(store_ports, a, 60, "transactional")
    await queue(store_ports, b, 3, "transactional")
    await queue(store_ports, c, 60, "transactional")
    assert await claim(store_ports, 43) == {("transactional", a): 20, ("transactional", b): 3,
                                            ("transactional", c): 20}


async def test_each_pick_leases_its_oldest_due_messages(store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    first = await queue(store_ports, tenant, 3, "otp")
    await queue(store_ports, tenant, 3, "otp", start=10)
    claimed = await store_ports.outbox.claim("relay", [Pick(Lane.OTP, tenant, 3)], 60)
    assert {m.id for m in claimed} == set(first)
    assert await store_ports.outbox.claim("relay", [], 60) == []
