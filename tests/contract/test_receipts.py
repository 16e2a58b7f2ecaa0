"""ReceiptStore: receipts matched to SENT messages, parts, held receipts, timeouts."""

from __future__ import annotations

from smsgw.app import Stores
from smsgw.domain.records import DeliveryReceipt, Outcome
from smsgw.domain.status import MessageStatus as S
from smsgw.services.claims import claim_due
from tests.contract.conftest import accepted


def receipt(provider_id: str, status: S = S.DELIVERED, code: str = "") -> DeliveryReceipt:
    return DeliveryReceipt("p", provider_id, status, code, "why" if code else "")


async def sent(ports: Stores, count: int = 1, parts: int = 1):  # type: ignore[no-untyped-def]
    tenant, ids = await accepted(ports, count)
    await claim_due(ports.outbox, "relay", 100, 60)
    await ports.outbox.record("relay", [Outcome(
        i, S.SENT, provider="p", provider_message_id=f"{i}-1",
        part_ids=tuple(f"{i}-{n}" for n in range(1, parts + 1)) if parts > 1 else ())
        for i in ids])
    return tenant, ids


async def status(ports: Stores, tenant, message_id) -> S:  # type: ignore[no-untyped-def]
    return (await ports.messages.get_many(tenant, [message_id]))[0].status


async def test_a_receipt_settles_a_sent_message_once(store_ports: Stores) -> None:
    tenant, (ok, bad) = await sent(store_ports, 2)
    matched = await store_ports.receipts.apply("p", [
        receipt(f"{ok}-1"), receipt(f"{bad}-1", S.UNDELIVERED, "ABSENT"), receipt("nobody")])
    assert matched == {f"{ok}-1", f"{bad}-1"}
    assert await status(store_ports, tenant, ok) is S.DELIVERED
    message = (await store_ports.messages.get_many(tenant, [bad]))[0]
    assert (message.status, message.error_code) == (S.UNDELIVERED, "ABSENT")
    assert await store_ports.receipts.apply("p", [receipt(f"{ok}-1")]) == set()
    assert await store_ports.receipts.known("p", [f"{ok}-1", "nobody"]) == {f"{ok}-1"}
    assert await store_ports.receipts.apply("other", [receipt(f"{ok}-1")]) == set()


async def test_a_multipart_message_settles_when_every_part_reported(
        store_ports: Stores) -> None:
    tenant, (message_id,) = await sent(store_ports, parts=3)
    assert await store_ports.receipts.apply("p", [receipt(f"{message_id}-2")]) == {
        f"{message_id}-2"}
    assert await status(store_ports, tenant, message_id) is S.SENT
    await store_ports.receipts.apply("p", [receipt(f"{message_id}-1"),
                                           receipt(f"{message_id}-3")])
    assert await status(store_ports, tenant, message_id) is S.DELIVERED


async def test_one_undelivered_part_settles_a_multipart_message(store_ports: Stores) -> None:
    tenant, (message_id,) = await sent(store_ports, parts=2)
    await store_ports.receipts.apply("p", [receipt(f"{message_id}-2", S.UNDELIVERED, "X")])
    assert await status(store_ports, tenant, message_id) is S.UNDELIVERED


async def test_an_early_receipt_is_held_until_its_message_is_sent(store_ports: Stores) -> None:
    tenant, (message_id,) = await accepted(store_ports)
    early = receipt("later-id")
    assert await store_ports.receipts.apply("p", [early]) == set()
    await store_ports.receipts.hold("p", [early])
    await store_ports.receipts.hold("p", [early])  # held once
    assert await store_ports.receipts.retry_held(3600) == ([], [])
    await claim_due(store_ports.outbox, "relay", 10, 60)
    await store_ports.outbox.record("relay", [Outcome(message_id, S.SENT, provider="p",
                                                      provider_message_id="later-id")])
    matched, given_up = await store_ports.receipts.retry_held(3600)
    assert matched == [early] and given_up == []
    assert await status(store_ports, tenant, message_id) is S.DELIVERED
    assert await store_ports.receipts.retry_held(3600) == ([], [])


async def test_a_held_receipt_is_given_up_after_its_window(store_ports: Stores) -> None:
    stray = receipt("stray")
    await store_ports.receipts.hold("p", [stray])
    assert await store_ports.receipts.retry_held(-1) == ([], [stray])
    assert await store_ports.receipts.retry_held(-1) == ([], [])


async def test_sent_messages_without_a_receipt_expire_after_the_timeout(
        store_ports: Stores) -> None:
    tenant, (message_id,) = await sent(store_ports)
    assert await store_ports.receipts.expire_unreceipted(3600) == 0
    assert await store_ports.receipts.expire_unreceipted(-1) == 1
    message = (await store_ports.messages.get_many(tenant, [message_id]))[0]
    assert (message.status, message.error_code) == (S.EXPIRED, "RECEIPT_TIMEOUT")
    assert await store_ports.receipts.apply("p", [receipt(f"{message_id}-1")]) == set()
