"""The dead-letter queue: messages that exhausted their retries, and their replay."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from typing import Any

from smsgw.adapters.postgres import queries
from smsgw.adapters.postgres.database import Database
from smsgw.domain.ids import new_ids
from smsgw.domain.records import DeadLetter, DeadLetterFilter, Replayed

Q = queries.load("dead_letters")


class DeadLetterRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def find(self, where: DeadLetterFilter, limit: int,
                   after: tuple[dt.datetime, uuid.UUID] | None = None) -> list[DeadLetter]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(
                Q["list_dead_letters"], where.tenant_id, where.provider, where.error_code,
                where.pending_only, after[0] if after else None, after[1] if after else None,
                limit)
        return [_dead_letter(row) for row in rows]

    async def replay(self, message_ids: Sequence[uuid.UUID]) -> list[Replayed]:
        """Replays each dead letter once; a later call reports the earlier replay."""
        async with self._db.transaction() as conn:
            rows = await conn.fetch(Q["lock_dead_letters"], list(dict.fromkeys(message_ids)))
            done = [Replayed(r["message_id"], r["replay_message_id"], True)
                    for r in rows if r["replay_message_id"] is not None]
            todo = [r["message_id"] for r in rows if r["replay_message_id"] is None]
            fresh = new_ids(len(todo))
            if todo:
                await conn.fetch(Q["insert_replay"], todo, fresh)
        return done + [Replayed(old, new, False) for old, new in zip(todo, fresh, strict=True)]


def _dead_letter(row: Any) -> DeadLetter:
    return DeadLetter(
        message_id=row["message_id"], tenant_id=row["tenant_id"], provider=row["provider"],
        route=row["route"], error_code=row["error_code"],
        error_description=row["error_description"], request=json.loads(row["request"]),
        attempts=json.loads(row["attempts"]), dead_at=row["dead_at"],
        replay_message_id=row["replay_message_id"], replayed_at=row["replayed_at"])
