"""Webhook endpoints, their position in the event log, and delivery attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from smsgw.adapters.postgres import queries
from smsgw.adapters.postgres.database import Database
from smsgw.domain.model import Cursor
from smsgw.domain.records import Delivery, Endpoint
from smsgw.domain.status import MessageStatus

Q = queries.load("webhooks")


class WebhookRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, tenant: uuid.UUID, url: str, statuses: Sequence[MessageStatus],
                     secret: str) -> Endpoint:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(Q["create_endpoint"], uuid.uuid4(), tenant, url,
                                      [int(s) for s in statuses], secret)
        assert row is not None
        return _endpoint(row)

    async def for_tenant(self, tenant: uuid.UUID) -> list[Endpoint]:
        async with self._db.connection() as conn:
            return [_endpoint(r) for r in await conn.fetch(Q["list_endpoints"], tenant)]

    async def delete(self, tenant: uuid.UUID, endpoint: uuid.UUID) -> Endpoint | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(Q["delete_endpoint"], tenant, endpoint)
        return None if row is None else _endpoint(row)

    async def lease_due(self, owner: str, limit: int, lease_seconds: float) -> list[Endpoint]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["lease_due"], limit, owner, lease_seconds)
        return [_endpoint(r) for r in rows]

    async def advance(self, endpoint: uuid.UUID, owner: str, cursor: Cursor) -> None:
        async with self._db.connection() as conn:
            await conn.execute(Q["advance"], endpoint, owner, cursor.txid, cursor.seq)

    async def release(self, endpoint: uuid.UUID, owner: str, *, delay_seconds: float,
                      failures: int, enabled: bool = True, reason: str = "") -> None:
        async with self._db.connection() as conn:
            await conn.execute(Q["release"], endpoint, owner, delay_seconds, failures, enabled,
                               reason)

    async def record(self, endpoint: uuid.UUID, delivery: Delivery) -> None:
        async with self._db.connection() as conn:
            await conn.execute(Q["record_delivery"], endpoint, delivery.event_id,
                               delivery.message_id, int(delivery.status), delivery.attempt,
                               delivery.http_status, delivery.error, delivery.duration_ms)

    async def deliveries(self, tenant: uuid.UUID, endpoint: uuid.UUID,
                         limit: int) -> list[Delivery]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["list_deliveries"], tenant, endpoint, limit)
        return [Delivery(r["event_id"], r["message_id"], MessageStatus(r["status"]),
                         r["attempt"], r["http_status"], r["error"], r["duration_ms"],
                         r["created_at"]) for r in rows]


def _endpoint(row: asyncpg.Record) -> Endpoint:
    return Endpoint(
        id=row["id"], tenant_id=row["tenant_id"], url=row["url"],
        statuses=frozenset(MessageStatus(s) for s in row["statuses"]), secret=row["secret"],
        enabled=row["enabled"], disabled_reason=row["disabled_reason"],
        cursor=Cursor(row["cursor_txid"], row["cursor_seq"]), failures=row["failures"],
        created_at=row["created_at"],
    )
