"""The outbox: leasing due work for the relay and recording what came of it."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence

from smsgw.adapters.postgres import queries
from smsgw.adapters.postgres.database import Database
from smsgw.domain.encoding import Encoding
from smsgw.domain.fairness import Backlog, Pick
from smsgw.domain.lanes import Lane
from smsgw.domain.records import OutboundMessage, Outcome

Q = queries.load("outbox")


class OutboxRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def backlog(self, cap: int) -> list[Backlog]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["due_backlog"], cap)
        return [Backlog(Lane(r["lane"]), r["tenant_id"], r["due"], r["weight"]) for r in rows]

    async def claim(self, owner: str, picks: Sequence[Pick], lease_seconds: float
                    ) -> list[OutboundMessage]:
        if not picks:
            return []
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["claim_due"], [int(p.lane) for p in picks],
                                    [p.tenant_id for p in picks], [p.count for p in picks],
                                    owner, lease_seconds, sum(p.count for p in picks))
        return [
            OutboundMessage(
                id=r["id"], tenant_id=r["tenant_id"], to=r["to_number"], body=r["body"],
                sender=r["sender"], attempt=r["attempts"], encoding=Encoding(r["encoding"]),
                client_reference=r["client_reference"], created_at=r["created_at"],
                traffic_class=r["traffic_class"], expire_at=r["expire_at"],
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
            [o.segments for o in outcomes],
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

    async def next_due(self) -> dt.timedelta | None:
        async with self._db.connection() as conn:
            value = await conn.fetchval(Q["next_due"])
        return value if isinstance(value, dt.timedelta) else None

    async def expire_overdue(self, limit: int = 1000) -> int:
        async with self._db.connection() as conn:
            return int(await conn.fetchval(Q["expire_overdue"], limit))
