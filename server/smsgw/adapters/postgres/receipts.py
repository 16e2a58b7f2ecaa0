"""Delivery receipts: matching a provider's report to the message it concerns."""

from __future__ import annotations

from collections.abc import Sequence

from smsgw.adapters.postgres import queries
from smsgw.adapters.postgres.database import Database
from smsgw.ports import DeliveryReceipt

Q = queries.load("receipts")


class ReceiptRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def apply(self, provider: str, receipts: Sequence[DeliveryReceipt]) -> set[str]:
        """Records the receipts that match a SENT message; returns their provider ids."""
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                Q["apply_receipts"], provider,
                [r.provider_message_id for r in receipts],
                [int(r.status) for r in receipts],
                [r.error_code for r in receipts],
                [r.error_description for r in receipts],
            )
        return {row[0] for row in rows}

    async def known(self, provider: str, provider_message_ids: Sequence[str]) -> set[str]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["find_provider_refs"], provider, provider_message_ids)
        return {row[0] for row in rows}
