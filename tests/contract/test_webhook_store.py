"""WebhookStore: endpoints, leases, cursors and delivery attempts."""

from __future__ import annotations

import datetime as dt
import uuid

from smsgw.app import Stores
from smsgw.domain.model import Cursor
from smsgw.domain.records import Delivery
from smsgw.domain.status import MessageStatus as S
from tests.contract.conftest import new_tenant


async def test_endpoints_are_per_tenant_and_start_at_the_horizon(store_ports: Stores) -> None:
    tenant, other = await new_tenant(store_ports), await new_tenant(store_ports)
    endpoint = await store_ports.webhooks.create(tenant, "https://a.example/hook",
                                                 [S.DELIVERED], "whsec_x")
    assert endpoint.wants(S.DELIVERED) and not endpoint.wants(S.SENT) and endpoint.enabled
    assert endpoint.cursor.txid < await store_ports.events.horizon()
    assert [e.id for e in await store_ports.webhooks.for_tenant(tenant)] == [endpoint.id]
    assert await store_ports.webhooks.for_tenant(other) == []
    assert await store_ports.webhooks.delete(other, endpoint.id) is None
    deleted = await store_ports.webhooks.delete(tenant, endpoint.id)
    assert deleted is not None and deleted.id == endpoint.id
    assert await store_ports.webhooks.for_tenant(tenant) == []


async def test_a_lease_holder_advances_and_releases_others_cannot(store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    endpoint = await store_ports.webhooks.create(tenant, "https://a.example/hook", [], "s")
    (leased,) = await store_ports.webhooks.lease_due("a", 10, 60)
    assert leased.id == endpoint.id
    assert await store_ports.webhooks.lease_due("b", 10, 60) == []
    await store_ports.webhooks.advance(endpoint.id, "b", Cursor(1, 1))  # not its lease
    await store_ports.webhooks.advance(endpoint.id, "a", Cursor(7, 9))
    await store_ports.webhooks.release(endpoint.id, "a", delay_seconds=0, failures=3,
                                       enabled=False, reason="410 Gone")
    (stored,) = await store_ports.webhooks.for_tenant(tenant)
    assert (stored.cursor, stored.failures, stored.enabled, stored.disabled_reason) == (
        Cursor(7, 9), 3, False, "410 Gone")
    assert await store_ports.webhooks.lease_due("a", 10, 60) == []  # disabled


async def test_a_released_endpoint_falls_due_after_its_delay(store_ports: Stores) -> None:
    endpoint = await store_ports.webhooks.create(await new_tenant(store_ports),
                                                 "https://a.example/", [], "s")
    await store_ports.webhooks.lease_due("a", 10, 60)
    await store_ports.webhooks.release(endpoint.id, "a", delay_seconds=3600, failures=1)
    assert await store_ports.webhooks.lease_due("a", 10, 60) == []
    await store_ports.webhooks.lease_due("a", 10, 60)
    again = await store_ports.webhooks.create(await new_tenant(store_ports),
                                              "https://b.example/", [], "s")
    assert [e.id for e in await store_ports.webhooks.lease_due("a", 10, 60)] == [again.id]


async def test_delivery_attempts_are_listed_newest_first(store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    endpoint = await store_ports.webhooks.create(tenant, "https://a.example/", [], "s")
    for attempt in (1, 2):
        await store_ports.webhooks.record(endpoint.id, Delivery(
            f"event-{attempt}", uuid.uuid4(), S.SENT, attempt, 500 if attempt == 1 else 200,
            "boom" if attempt == 1 else "", 12, dt.datetime.now(dt.UTC)))
    found = await store_ports.webhooks.deliveries(tenant, endpoint.id, 10)
    assert [(d.event_id, d.http_status) for d in found] == [("event-2", 200), ("event-1", 500)]
    assert len(await store_ports.webhooks.deliveries(tenant, endpoint.id, 1)) == 1
    assert await store_ports.webhooks.deliveries(uuid.uuid4(), endpoint.id, 10) == []
