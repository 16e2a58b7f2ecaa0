"""In-memory dead-letter queue and its replay (see state.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence

from smsgw.adapters.memory.state import MemoryState, MessageRow, new_message
from smsgw.domain.ids import new_ids
from smsgw.domain.records import DeadLetter, DeadLetterFilter, Replayed


class MemoryDeadLetterStore:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def find(self, where: DeadLetterFilter, limit: int,
                   after: tuple[dt.datetime, uuid.UUID] | None = None) -> list[DeadLetter]:
        found = [d for d in self._s.dead_letters.values() if _matches(d, where)
                 and (after is None or (d.dead_at, d.message_id) < after)]
        found.sort(key=lambda d: (d.dead_at, d.message_id), reverse=True)
        return found[:limit]

    async def replay(self, message_ids: Sequence[uuid.UUID]) -> list[Replayed]:
        letters = [self._s.dead_letters[i] for i in sorted(set(message_ids))
                   if i in self._s.dead_letters]
        done = [Replayed(d.message_id, d.replay_message_id, True)
                for d in letters if d.replay_message_id is not None]
        todo = [d for d in letters if d.replay_message_id is None]
        self._s.begin()
        fresh = [Replayed(d.message_id, self._replay(d, new_id), False)
                 for d, new_id in zip(todo, new_ids(len(todo)), strict=True)]
        return done + fresh

    def _replay(self, letter: DeadLetter, new_id: uuid.UUID) -> uuid.UUID:
        original = self._s.messages[letter.message_id]
        m, now = original.message, self._s.clock()
        message = new_message(
            m.tenant_id, new_id, now, to=m.to, body=m.body, sender=m.sender,
            encoding=m.encoding, segments=m.segments, client_reference=m.client_reference,
            idempotency_key=f"dead-letter-replay:{m.id}",
            metadata={**m.metadata, "replay_of": str(m.id)}, traffic_class=m.traffic_class)
        self._s.messages[new_id] = MessageRow(message, original.fingerprint, due_at=now)
        self._s.keys[(m.tenant_id, message.idempotency_key)] = new_id
        self._s.append(message, None)
        self._s.dead_letters[m.id] = dataclasses.replace(
            letter, replay_message_id=new_id, replayed_at=now)
        return new_id


def _matches(letter: DeadLetter, where: DeadLetterFilter) -> bool:
    return ((where.tenant_id is None or letter.tenant_id == where.tenant_id)
            and (not where.provider or letter.provider == where.provider)
            and (not where.error_code or letter.error_code == where.error_code)
            and (not where.pending_only or letter.replay_message_id is None))
