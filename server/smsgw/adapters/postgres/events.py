"""The append-only event log, read in commit-safe cursor order."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from smsgw.adapters.postgres import queries
from smsgw.adapters.postgres.database import Database
from smsgw.domain.model import Cursor, StatusEvent
from smsgw.domain.records import EventPage, WatchTarget
from smsgw.domain.status import MessageStatus

Q = queries.load("events")


class EventLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def for_tenant(self, tenant_id: uuid.UUID, after: Cursor, limit: int) -> EventPage:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["tenant_events"], tenant_id, after.txid, after.seq, limit)
        return _page(rows)

    async def for_messages(
        self, ids: Sequence[uuid.UUID], after: Cursor, limit: int
    ) -> EventPage:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["message_events"], ids, after.txid, after.seq, limit)
        return _page(rows)

    async def horizon(self) -> int:
        async with self._db.connection() as conn:
            return int(await conn.fetchval(Q["horizon"]))

    async def watch_targets(
        self, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]
    ) -> list[WatchTarget]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["watch_targets"], tenant_id, ids)
        return [
            WatchTarget(
                r["id"], MessageStatus(r["status"]),
                None if r["txid"] is None else Cursor(r["txid"], r["seq"]),
            )
            for r in rows
        ]


def _page(rows: Sequence[asyncpg.Record]) -> EventPage:
    horizon = rows[0]["horizon"] if rows else 0
    events = [_event(r) for r in rows if r["id"] is not None]
    return EventPage(events, horizon)


def _event(r: asyncpg.Record) -> StatusEvent:
    previous = r["previous_status"]
    return StatusEvent(
        cursor=Cursor(r["txid"], r["id"]), message_id=r["message_id"],
        status=MessageStatus(r["status"]),
        previous_status=None if previous is None else MessageStatus(previous),
        occurred_at=r["occurred_at"], attempt=r["attempt"], provider=r["provider"],
        provider_message_id=r["provider_message_id"], error_code=r["error_code"],
        error_description=r["error_description"], client_reference=r["client_reference"],
    )
