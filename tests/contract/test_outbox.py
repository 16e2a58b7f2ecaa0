"""Outbox and DeadLetterStore: leases, outcomes, retries, dead letters and their replay."""

from __future__ import annotations

from smsgw.app import Stores
from smsgw.domain.records import DeadLetterFilter, Outcome
from smsgw.domain.status import MessageStatus
from smsgw.services.claims import claim_due
from tests.contract.conftest import accepted


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
