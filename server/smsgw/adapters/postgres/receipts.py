"""Delivery receipts: matching a provider's report to the message it concerns."""

from __future__ import annotations

from collections.abc import Sequence

from asyncpg import Connection

from smsgw.adapters.postgres import queries
from smsgw.adapters.postgres.database import Database
from smsgw.domain.records import DeliveryReceipt
from smsgw.domain.status import MessageStatus

Q = queries.load("receipts")


class ReceiptRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def apply(self, provider: str, receipts: Sequence[DeliveryReceipt]) -> set[str]:
        """Records the receipts that match a SENT message; returns their provider ids.

        Most messages are single-part, so their receipts are applied first,
        in one statement. Only what that leaves unmatched is tried against
        the parts of multipart messages: a receipt for one part marks it, and
        the message settles once all its parts have reported. No transaction
        is needed: each statement sees what the others committed, and a
        message settles at most once (only a SENT message changes).
        """
        async with self._db.connection() as conn:
            return await _apply(conn, provider, receipts)

    async def hold(self, provider: str, receipts: Sequence[DeliveryReceipt]) -> None:
        """Keeps receipts that matched nothing yet, durably, for ``retry_held``."""
        async with self._db.connection() as conn:
            await conn.execute(Q["hold_receipts"], provider, *_columns(receipts))

    async def retry_held(self, window_seconds: float, limit: int = 1000
                         ) -> tuple[list[DeliveryReceipt], list[DeliveryReceipt]]:
        """Tries the held receipts again: returns (now matched, given up on).

        Matched and expired ones are removed in the same transaction that
        applied them; the others stay for the next try, by any process.
        """
        async with self._db.transaction() as conn:
            rows = await conn.fetch(Q["take_pending"], limit, window_seconds)
            by_provider: dict[str, list[DeliveryReceipt]] = {}
            for r in rows:
                by_provider.setdefault(r["provider"], []).append(DeliveryReceipt(
                    r["provider"], r["provider_message_id"], MessageStatus(r["status"]),
                    r["error_code"], r["error_description"]))
            expired = {(r["provider"], r["provider_message_id"]) for r in rows if r["expired"]}
            matched: list[DeliveryReceipt] = []
            for provider, receipts in by_provider.items():
                ids = await _apply(conn, provider, receipts)
                matched += [r for r in receipts if r.provider_message_id in ids]
            done = {(r.provider, r.provider_message_id) for r in matched}
            given_up = [r for group in by_provider.values() for r in group
                        if (r.provider, r.provider_message_id) in expired - done]
            finished = matched + given_up
            if finished:
                await conn.execute(Q["release_pending"], [r.provider for r in finished],
                                   [r.provider_message_id for r in finished],
                                   [int(r.status) for r in finished])
        return matched, given_up

    async def expire_unreceipted(self, timeout_seconds: float, limit: int = 1000) -> int:
        """Ends SENT messages whose receipt never came as EXPIRED; returns how many."""
        async with self._db.connection() as conn:
            return int(await conn.fetchval(Q["expire_unreceipted"], timeout_seconds, limit))

    async def known(self, provider: str, provider_message_ids: Sequence[str]) -> set[str]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["find_provider_refs"], provider, provider_message_ids)
        return {row[0] for row in rows}


async def _apply(conn: Connection, provider: str, receipts: Sequence[DeliveryReceipt]
                 ) -> set[str]:
    rows = await conn.fetch(Q["apply_receipts"], provider, *_columns(receipts), False)
    matched = {row[0] for row in rows}
    rest = [r for r in receipts if r.provider_message_id not in matched]
    if not rest:
        return matched
    parts = await conn.fetch(Q["mark_parts"], provider, *_columns(rest))
    if not parts:
        return matched
    matched.update(row[0] for row in parts)
    settled = await conn.fetch(Q["settled_multipart"], list({row[1] for row in parts}))
    if settled:
        await conn.fetch(Q["apply_receipts"], provider, *_columns([
            DeliveryReceipt(provider, row[0], MessageStatus(row[1]), row[2], row[3])
            for row in settled]), True)
    return matched


def _columns(receipts: Sequence[DeliveryReceipt]) -> list[list[object]]:
    return [[r.provider_message_id for r in receipts], [int(r.status) for r in receipts],
            [r.error_code for r in receipts], [r.error_description for r in receipts]]
