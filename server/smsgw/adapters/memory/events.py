"""In-memory event log (see state.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from smsgw.adapters.memory.state import MemoryState
from smsgw.domain.model import Cursor
from smsgw.domain.records import EventPage, WatchTarget


class MemoryEventLog:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def for_tenant(self, tenant_id: uuid.UUID, after: Cursor, limit: int) -> EventPage:
        return self._page(lambda tenant, _message: tenant == tenant_id, after, limit)

    async def for_messages(self, ids: Sequence[uuid.UUID], after: Cursor,
                           limit: int) -> EventPage:
        wanted = set(ids)
        return self._page(lambda _tenant, message: message in wanted, after, limit)

    async def horizon(self) -> int:
        return self._s.horizon()

    async def watch_targets(self, tenant_id: uuid.UUID,
                            ids: Sequence[uuid.UUID]) -> list[WatchTarget]:
        targets = []
        for message_id in dict.fromkeys(ids):
            row = self._s.messages.get(message_id)
            if row is None or row.message.tenant_id != tenant_id:
                continue
            last = [e.cursor for _, e in self._s.events
                    if e.message_id == message_id and e.status is row.message.status]
            targets.append(WatchTarget(message_id, row.message.status, max(last, default=None)))
        return targets

    def _page(self, wanted: Callable[[uuid.UUID, uuid.UUID], bool], after: Cursor,
              limit: int) -> EventPage:
        """Events of (tenant, message) pairs ``wanted`` after the cursor, in cursor order."""
        events = [e for tenant, e in self._s.events
                  if e.cursor > after and wanted(tenant, e.message_id)]
        events.sort(key=lambda e: e.cursor)
        return EventPage(events[:limit], self._s.horizon())
