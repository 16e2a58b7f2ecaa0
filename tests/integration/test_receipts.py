"""Receipts that overtake their SENT write-back wait in the database, for any process."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from smsgw.adapters.postgres.outbox import OutboxRepository
from smsgw.adapters.postgres.receipts import ReceiptRepository
from smsgw.domain.records import Outcome
from smsgw.domain.status import MessageStatus
from smsgw.ports import DeliveryReceipt
from smsgw.services.claims import claim_due
from smsgw.services.receipts import ReceiptProcessor
from tests.integration.test_relay import accept, statuses

pytestmark = pytest.mark.integration


async def until(condition) -> None:
    async with asyncio.timeout(15):
        while not await condition():
            await asyncio.sleep(0.05)


async def test_an_early_receipt_survives_its_process_and_settles_the_message_later(db):
    (message_id,) = await accept(db, 1)
    early = ReceiptProcessor(ReceiptRepository(db), retry_seconds=0.05, coalesce_seconds=0.01)
    await early.start()
    early.accept(DeliveryReceipt("smsc", "abc123", MessageStatus.DELIVERED))

    async def held() -> bool:
        async with db.connection() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM pending_receipts"))

    await until(held)
    await early.stop()  # the process that took the receipt is gone

    outbox = OutboxRepository(db)
    await claim_due(outbox, "relay", 10, 30)
    await outbox.record("relay", [Outcome(message_id, MessageStatus.SENT, provider="smsc",
                                          provider_message_id="abc123")])
    later = ReceiptProcessor(ReceiptRepository(db), retry_seconds=0.05)
    await later.start()
    try:
        async def delivered() -> bool:
            return (await statuses(db)) == {4: 1}

        await until(delivered)
    finally:
        await later.stop()
    assert not await held()


async def test_a_receipt_that_never_matches_is_given_up_after_the_window(db):
    processor = ReceiptProcessor(ReceiptRepository(db), match_window_seconds=1.0,
                                 retry_seconds=0.05, coalesce_seconds=0.01)
    before = REGISTRY.get_sample_value(
        "sms_receipts_total", {"provider": "smsc", "result": "unmatched"}) or 0.0
    await processor.start()
    try:
        processor.accept(DeliveryReceipt("smsc", "nobody", MessageStatus.DELIVERED))

        async def pending() -> int:
            async with db.connection() as conn:
                return int(await conn.fetchval("SELECT count(*) FROM pending_receipts"))

        async def held() -> bool:
            return await pending() == 1

        async def gone() -> bool:
            return await pending() == 0

        await until(held)
        await until(gone)
    finally:
        await processor.stop()
    after = REGISTRY.get_sample_value(
        "sms_receipts_total", {"provider": "smsc", "result": "unmatched"})
    assert after == before + 1
