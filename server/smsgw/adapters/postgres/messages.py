"""Messages: batch insert with their outbox rows and first events, and reads."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from smsgw.adapters.postgres import queries
from smsgw.adapters.postgres.database import Database
from smsgw.domain.encoding import Encoding
from smsgw.domain.lanes import lane_of
from smsgw.domain.model import Message, MessageFilter, PageRequest, Submission
from smsgw.domain.quota import PeriodUsage, QuotaRefusal, SegmentQuota, room
from smsgw.domain.status import MessageStatus

Q = queries.load("messages")


class MessageRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(
        self, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID], items: Sequence[Submission]
    ) -> dict[uuid.UUID, dt.datetime]:
        """Writes what is new in one transaction; returns the ids written.

        Items whose idempotency key is already taken are left out of the
        result, and the caller resolves them with ``find_by_keys``.
        """
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["insert_messages"], tenant_id, ids, *_columns(items))
        return {row[0]: row[1] for row in rows}

    async def insert_within_quota(
        self, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID], items: Sequence[Submission],
        quota: SegmentQuota,
    ) -> tuple[dict[uuid.UUID, dt.datetime], QuotaRefusal | None]:
        """``insert`` with the day's and month's counts locked, checked and moved."""
        async with self._db.transaction() as conn:
            counts = await _locked_usage(conn, tenant_id)
            left, binding = room(quota, counts)
            assert binding is not None  # a quota has at least one limit
            day, month = (next(u.start for u in counts if u.period == p) for p in "dm")
            rows = await conn.fetch(Q["insert_messages_within_quota"], tenant_id, ids,
                                    *_columns(items), left, day, month)
        written = {row[0]: row[1] for row in rows if row[1] is not None}
        refused = frozenset(row[0] for row in rows if row[1] is None)
        if not refused:
            return written, None
        segments = dict(zip(ids, (s.segments for s in items), strict=True))
        used = binding.used + sum(segments[i] for i in written)
        return written, QuotaRefusal(refused, PeriodUsage(binding.period, binding.start, used),
                                     quota.limit(binding.period))

    async def usage(self, tenant_id: uuid.UUID) -> list[PeriodUsage]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["usage"], tenant_id)
        return [PeriodUsage(r["period"], r["period_start"], r["segments"]) for r in rows]

    async def find_by_keys(
        self, tenant_id: uuid.UUID, keys: Sequence[str]
    ) -> dict[str, tuple[str, uuid.UUID]]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["find_by_idempotency_keys"], tenant_id, keys)
        return {row[0]: (row[1], row[2]) for row in rows}

    async def get_many(self, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[Message]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["get_messages"], tenant_id, ids)
        return [row_to_message(row) for row in rows]

    async def list(
        self, tenant_id: uuid.UUID, where: MessageFilter, page: PageRequest
    ) -> list[Message]:
        after_time, after_id = page.after if page.after else (None, None)
        statuses = [int(s) for s in where.statuses] or None
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                Q["list_messages"], tenant_id, statuses, where.to or None, where.created_from,
                where.created_before, after_time, after_id, page.size, where.scheduled_only,
            )
        return [row_to_message(row) for row in rows]

    async def cancel(self, tenant_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(Q["cancel_message"], tenant_id, message_id)
        return None if row is None else row_to_message(row)


async def _locked_usage(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> list[PeriodUsage]:
    """The current periods' counts, locked; a period's first accept starts its count."""
    rows = await conn.fetch(Q["lock_usage"], tenant_id)
    if len(rows) < 2:
        await conn.execute(Q["seed_usage"], tenant_id)
        rows = await conn.fetch(Q["lock_usage"], tenant_id)
    return [PeriodUsage(r["period"], r["period_start"], r["segments"]) for r in rows]


def _columns(items: Sequence[Submission]) -> list[list[Any]]:
    return [
        [s.idempotency_key for s in items],
        [s.fingerprint for s in items],
        [s.to for s in items],
        [s.body for s in items],
        [s.sender for s in items],
        [int(s.encoding) for s in items],
        [s.segments for s in items],
        [s.client_reference for s in items],
        [json.dumps(s.metadata) if s.metadata else "{}" for s in items],
        [s.traffic_class for s in items],
        [s.send_at for s in items],
        [s.expire_at for s in items],
        [int(lane_of(s.traffic_class)) for s in items],
    ]


def row_to_message(row: asyncpg.Record) -> Message:
    return Message(
        id=row["id"], tenant_id=row["tenant_id"], to=row["to_number"], body=row["body"],
        sender=row["sender"], encoding=Encoding(row["encoding"]), segments=row["segments"],
        status=MessageStatus(row["status"]), attempts=row["attempts"],
        client_reference=row["client_reference"], idempotency_key=row["idempotency_key"],
        created_at=row["created_at"], updated_at=row["updated_at"],
        metadata=json.loads(row["metadata"]), provider=row["provider"],
        provider_message_id=row["provider_message_id"], error_code=row["error_code"],
        error_description=row["error_description"], sent_at=row["sent_at"],
        delivered_at=row["delivered_at"], traffic_class=row["traffic_class"],
        route=row["route"], send_at=row["send_at"], expire_at=row["expire_at"],
    )
