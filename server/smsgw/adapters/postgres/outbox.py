"""The outbox: leasing due work for the relay and recording what came of it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from smsgw.adapters.postgres import queries
from smsgw.adapters.postgres.database import Database
from smsgw.domain.encoding import Encoding
from smsgw.domain.status import MessageStatus

Q = queries.load("outbox")


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    id: uuid.UUID
    tenant_id: uuid.UUID
    to: str
    body: str
    sender: str
    attempt: int
    client_reference: str
    created_at: dt.datetime
    encoding: Encoding
    traffic_class: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the relay learned about one claimed message."""

    id: uuid.UUID
    status: MessageStatus
    provider: str = ""
    provider_message_id: str = ""
    error_code: str = ""
    error_description: str = ""
    retry_in_ms: int | None = None  # set: back to QUEUED, due again after this delay
    route: str = ""
    refund: bool = False  # a deferral: no provider was asked, the attempt doesn't count
    dead_letter: bool = False  # retries exhausted: keep it in the dead-letter queue
    part_ids: tuple[str, ...] = ()  # every part's provider id, for a multipart message


class OutboxRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, owner: str, limit: int, lease_seconds: float) -> list[ClaimedMessage]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["claim_due"], limit, owner, lease_seconds)
        return [
            ClaimedMessage(
                id=r["id"], tenant_id=r["tenant_id"], to=r["to_number"], body=r["body"],
                sender=r["sender"], attempt=r["attempts"], client_reference=r["client_reference"],
                created_at=r["created_at"], encoding=Encoding(r["encoding"]),
                traffic_class=r["traffic_class"],
            )
            for r in rows
        ]

    async def record(self, owner: str, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        """Applies the outcomes whose rows this owner still leases; returns their ids."""
        columns = (
            [o.id for o in outcomes],
            [int(o.status) for o in outcomes],
            [o.provider for o in outcomes],
            [o.provider_message_id for o in outcomes],
            [o.error_code for o in outcomes],
            [o.error_description for o in outcomes],
            [o.retry_in_ms for o in outcomes],
            [o.route for o in outcomes],
            [o.refund for o in outcomes],
            [o.dead_letter for o in outcomes],
        )
        parts = [(o.provider, pid, o.id, n) for o in outcomes if len(o.part_ids) > 1
                 for n, pid in enumerate(o.part_ids, start=1)]
        async with self._db.connection() as conn:
            if parts:
                await conn.execute(Q["record_parts"], *map(list, zip(*parts, strict=True)))
            rows = await conn.fetch(Q["record_outcomes"], owner, *columns)
        return {row[0] for row in rows}

    async def depth(self) -> int:
        async with self._db.connection() as conn:
            return int(await conn.fetchval(Q["outbox_depth"]))
