"""EventLog: every status change is an event, read in cursor order after any cursor."""

from __future__ import annotations

import asyncio

from smsgw.app import Stores
from smsgw.domain.model import Cursor
from smsgw.domain.records import DeliveryReceipt, Outcome
from smsgw.domain.status import MessageStatus as S
from smsgw.services.claims import claim_due
from tests.contract.conftest import accepted

START = Cursor(0, 0)


async def history_of(ports: Stores, message_id, count: int):  # type: ignore[no-untyped-def]
    """The message's events once ``count`` are visible: Postgres shows an event only
    below the oldest transaction still running anywhere in the cluster."""
    async with asyncio.timeout(10):
        while len(events := (await ports.events.for_messages(
                [message_id], START, 100)).events) < count:
            await asyncio.sleep(0.02)
    return events


async def deliver(ports: Stores, message_id) -> None:  # type: ignore[no-untyped-def]
    await claim_due(ports.outbox, "relay", 10, 60)
    await ports.outbox.record("relay", [Outcome(message_id, S.SENT, provider="p",
                                                provider_message_id=f"p-{message_id}")])
    await ports.receipts.apply("p", [DeliveryReceipt("p", f"p-{message_id}", S.DELIVERED)])


async def test_a_message_history_in_order_with_previous_states(store_ports: Stores) -> None:
    tenant, (message_id,) = await accepted(store_ports)
    await deliver(store_ports, message_id)
    await history_of(store_ports, message_id, 4)
    page = await store_ports.events.for_messages([message_id], START, 100)
    assert [(e.status, e.previous_status) for e in page.events] == [
        (S.QUEUED, None), (S.SENDING, S.QUEUED), (S.SENT, S.SENDING), (S.DELIVERED, S.SENT)]
    cursors = [e.cursor for e in page.events]
    assert cursors == sorted(cursors) and page.horizon > cursors[-1].txid
    sent = page.events[2]
    assert (sent.attempt, sent.provider, sent.provider_message_id) == (
        1, "p", f"p-{message_id}")
    assert page.events[1].provider == ""  # the claim names no provider yet
    tenant_page = await store_ports.events.for_tenant(tenant, cursors[1], 100)
    assert [e.status for e in tenant_page.events] == [S.SENT, S.DELIVERED]


async def test_pages_resume_after_their_last_cursor_and_tenants_stay_apart(
        store_ports: Stores) -> None:
    tenant, ids = await accepted(store_ports, 5)
    other, others = await accepted(store_ports, 2)
    await history_of(store_ports, others[-1], 1)  # written last: the others are visible too
    first = await store_ports.events.for_tenant(tenant, START, 3)
    rest = await store_ports.events.for_tenant(tenant, first.events[-1].cursor, 100)
    assert [e.message_id for e in first.events + rest.events] == ids
    assert len((await store_ports.events.for_tenant(other, START, 100)).events) == 2
    assert await store_ports.events.horizon() >= first.horizon


async def test_watch_targets_name_the_event_that_made_each_state(store_ports: Stores) -> None:
    tenant, (done, waiting) = await accepted(store_ports, 2)
    await store_ports.messages.cancel(tenant, done)
    targets = {t.id: t for t in await store_ports.events.watch_targets(tenant, [done, waiting])}
    history = await history_of(store_ports, done, 2)
    assert targets[done].status is S.CANCELED and targets[done].last_event == history[-1].cursor
    assert targets[waiting].status is S.QUEUED
    assert await store_ports.events.watch_targets(tenant, []) == []
