"""Outbox and DeadLetterStore: leases, outcomes, retries, dead letters and their replay."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid

from smsgw.app import Stores
from smsgw.domain.model import Cursor
from smsgw.domain.records import DeadLetterFilter, Outcome
from smsgw.domain.status import MessageStatus
from smsgw.services.claims import claim_due
from tests.contract.conftest import accepted, new_tenant, submission


async def status_of(store_ports: Stores, tenant, message_id) -> tuple[MessageStatus, int]:  # type: ignore[no-untyped-def]
    message = (await store_ports.messages.get_many(tenant, [message_id]))[0]
    return message.status, message.attempts


async def test_a_claim_leases_due_messages_once_and_counts_an_attempt(store_ports: Stores) -> None:
    tenant, ids = await accepted(store_ports, 3)
    claimed = (await claim_due(store_ports.outbox, "relay-a", 2, 60)).messages
    assert len(claimed) == 2 and {c.attempt for c in claimed} == {1}
    assert claimed[0].tenant_id == tenant and claimed[0].to == "+16502530000"
    rest = (await claim_due(store_ports.outbox, "relay-b", 10, 60)).messages
    assert {c.id for c in claimed + rest} == set(ids) and len(rest) == 1
    assert not (await claim_due(store_ports.outbox, "relay-b", 10, 60)).messages  # leased
    assert await status_of(store_ports, tenant, ids[0]) == (MessageStatus.SENDING, 1)
    assert await store_ports.outbox.depth() == 3


async def test_sent_outcomes_leave_the_outbox_and_only_the_lease_holder_records(
        store_ports: Stores) -> None:
    tenant, (message_id,) = await accepted(store_ports)
    await claim_due(store_ports.outbox, "relay-a", 10, 60)
    sent = Outcome(message_id, MessageStatus.SENT, provider="p", provider_message_id="p-1",
                   route="default")
    assert await store_ports.outbox.record("relay-b", [sent]) == set()  # not its lease
    assert await store_ports.outbox.record("relay-a", [sent]) == {message_id}
    message = (await store_ports.messages.get_many(tenant, [message_id]))[0]
    assert (message.status, message.provider, message.provider_message_id, message.route) == (
        MessageStatus.SENT, "p", "p-1", "default")
    assert message.sent_at is not None and await store_ports.outbox.depth() == 0
    assert await store_ports.outbox.record("relay-a", [sent]) == set()  # nothing leased any more


async def test_a_retry_reschedules_and_a_deferral_gives_the_attempt_back(
        store_ports: Stores) -> None:
    tenant, (retried, deferred) = await accepted(store_ports, 2)
    await claim_due(store_ports.outbox, "relay", 10, 60)
    applied = await store_ports.outbox.record("relay", [
        Outcome(retried, MessageStatus.QUEUED, provider="p", error_code="BUSY",
                retry_in_ms=60_000),
        Outcome(deferred, MessageStatus.QUEUED, retry_in_ms=60_000, refund=True)])
    assert applied == {retried, deferred}
    assert await status_of(store_ports, tenant, retried) == (MessageStatus.QUEUED, 1)
    assert await status_of(store_ports, tenant, deferred) == (MessageStatus.QUEUED, 0)
    assert await store_ports.outbox.depth() == 2
    assert not (await claim_due(store_ports.outbox, "relay", 10, 60)).messages  # due later


async def test_retries_exhausted_make_one_dead_letter_replayed_once(store_ports: Stores) -> None:
    tenant, (message_id,) = await accepted(store_ports)
    await claim_due(store_ports.outbox, "relay", 10, 60)
    await store_ports.outbox.record("relay", [Outcome(
        message_id, MessageStatus.FAILED, provider="p", error_code="BUSY",
        error_description="carrier busy", dead_letter=True)])
    assert await status_of(store_ports, tenant, message_id) == (MessageStatus.FAILED, 1)
    (letter,) = await store_ports.dead_letters.find(DeadLetterFilter(provider="p"), 10)
    assert (letter.message_id, letter.error_code, letter.request["body"]) == (
        message_id, "BUSY", "hello 0")
    assert [a["error_code"] for a in letter.attempts][-1] == "BUSY"
    assert await store_ports.dead_letters.find(DeadLetterFilter(provider="other"), 10) == []
    (first,) = await store_ports.dead_letters.replay([message_id])
    (again,) = await store_ports.dead_letters.replay([message_id])
    assert not first.already_replayed and again.already_replayed
    assert first.replay_message_id == again.replay_message_id
    replay = (await store_ports.messages.get_many(tenant, [first.replay_message_id]))[0]
    assert (replay.status, replay.body) == (MessageStatus.QUEUED, "hello 0")
    assert replay.metadata["replay_of"] == str(message_id)
    assert await store_ports.dead_letters.find(DeadLetterFilter(pending_only=True), 10) == []


async def test_an_outcome_never_moves_a_message_against_the_state_machine(
        store_ports: Stores) -> None:
    tenant, (message_id,) = await accepted(store_ports)
    await claim_due(store_ports.outbox, "relay", 10, 60)
    await store_ports.outbox.record("relay", [Outcome(message_id, MessageStatus.SENT,
                                                 provider="p", provider_message_id="x")])
    await store_ports.receipts.apply("p", [_delivered("x")])
    # A stale lease's late outcome: the row is gone, nothing changes.
    assert await store_ports.outbox.record("relay", [Outcome(message_id, MessageStatus.FAILED)]) \
        == set()
    assert await status_of(store_ports, tenant, message_id) == (MessageStatus.DELIVERED, 1)


def _delivered(provider_id: str):  # type: ignore[no-untyped-def]
    from smsgw.domain.records import DeliveryReceipt

    return DeliveryReceipt("p", provider_id, MessageStatus.DELIVERED)


async def test_the_parts_a_provider_sent_are_what_the_message_counts(store_ports: Stores) -> None:
    tenant, (split, whole) = await accepted(store_ports, 2)
    stored = (await store_ports.messages.get_many(tenant, [split]))[0].segments
    await claim_due(store_ports.outbox, "relay", 10, 60)
    await store_ports.outbox.record("relay", [
        Outcome(split, MessageStatus.SENT, provider="p", provider_message_id="a-1",
                part_ids=("a-1", "a-2", "a-3", "a-4"), segments=4),
        Outcome(whole, MessageStatus.SENT, provider="p", provider_message_id="b-1")])
    counted = {m.id: m.segments for m in await store_ports.messages.get_many(tenant,
                                                                              [split, whole])}
    assert counted == {split: 4, whole: stored}


async def test_next_due_says_how_long_until_the_earliest_row_falls_due(
        store_ports: Stores) -> None:
    assert await store_ports.outbox.next_due() is None  # an empty outbox
    tenant = await new_tenant(store_ports)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    await store_ports.messages.insert(tenant, [uuid.uuid4()],
                                      [dataclasses.replace(submission(1), send_at=later)])
    until = await store_ports.outbox.next_due()
    assert until is not None and dt.timedelta(minutes=59) < until <= dt.timedelta(hours=1)
    await store_ports.messages.insert(tenant, [uuid.uuid4()], [submission(2)])
    until = await store_ports.outbox.next_due()
    assert until is not None and until <= dt.timedelta(0)  # due now


async def test_a_scheduled_message_is_not_claimed_before_its_send_time(
        store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    (scheduled, now) = ids = [uuid.uuid4(), uuid.uuid4()]
    await store_ports.messages.insert(tenant, ids, [
        dataclasses.replace(submission(1), send_at=later), submission(2)])
    assert [m.id for m in (await claim_due(store_ports.outbox, "relay", 10, 60)).messages] == [now]
    assert (await claim_due(store_ports.outbox, "relay", 10, 60)).messages == []
    assert await status_of(store_ports, tenant, scheduled) == (MessageStatus.QUEUED, 0)


async def test_the_sweep_expires_overdue_rows_no_relay_holds(store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    waiting, leased, lapsed, valid = ids = [uuid.uuid4() for _ in range(4)]
    await store_ports.messages.insert(tenant, [leased], [
        dataclasses.replace(submission(1), expire_at=ended)])
    live = (await claim_due(store_ports.outbox, "live", 10, 60)).messages
    assert [m.id for m in live] == [leased]
    await store_ports.messages.insert(tenant, [lapsed], [
        dataclasses.replace(submission(2), expire_at=ended)])
    assert [m.id for m in (await claim_due(store_ports.outbox, "dead", 10, 0)).messages] == [lapsed]
    await store_ports.messages.insert(tenant, [waiting, valid], [
        dataclasses.replace(submission(3), expire_at=ended), submission(4)])

    assert await store_ports.outbox.expire_overdue() == 2
    got = {m.id: m for m in await store_ports.messages.get_many(tenant, ids)}
    for expired in (waiting, lapsed):
        assert (got[expired].status, got[expired].error_code) == (
            MessageStatus.EXPIRED, "VALIDITY_EXPIRED")
        assert "validity ended at" in got[expired].error_description
    assert got[leased].status is MessageStatus.SENDING  # its relay's outcome decides
    assert got[valid].status is MessageStatus.QUEUED
    assert await store_ports.outbox.depth() == 2
    assert await store_ports.outbox.expire_overdue() == 0
    # The expiry is in the event log, once, as any other change.
    async with asyncio.timeout(10):  # Postgres shows events below the oldest open transaction
        while len(events := (await store_ports.events.for_messages(
                [waiting], Cursor(0, 0), 10)).events) < 2:
            await asyncio.sleep(0.02)
    assert [(e.status, e.previous_status, e.error_code) for e in events] == [
        (MessageStatus.QUEUED, None, ""),
        (MessageStatus.EXPIRED, MessageStatus.QUEUED, "VALIDITY_EXPIRED")]


async def test_a_canceled_scheduled_message_is_neither_claimed_nor_expired(
        store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    (message_id,) = ids = [uuid.uuid4()]
    await store_ports.messages.insert(tenant, ids, [
        dataclasses.replace(submission(1), send_at=later)])
    assert await store_ports.messages.cancel(tenant, message_id) is not None
    assert await store_ports.outbox.next_due() is None
    assert await store_ports.outbox.expire_overdue() == 0
    assert await status_of(store_ports, tenant, message_id) == (MessageStatus.CANCELED, 0)
