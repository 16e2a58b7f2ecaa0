"""Status watch streams: replay from a cursor, then follow the log live.

Each stream reads the event log itself (so it can resume anywhere), and is
woken by one process-wide signal fed by LISTEN/NOTIFY, with a poll interval
as the fallback. The cursor only ever moves forward, and past the horizon
below which no transaction can still add events, so a resumed stream sees
every event once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from smsgw.domain.errors import NotFound
from smsgw.domain.model import Cursor, StatusEvent
from smsgw.domain.records import EventPage
from smsgw.domain.status import FINAL
from smsgw.ports import EventLog

_END_OF_TXID = 2**63 - 1
PAGE = 500


class Signal:
    """A broadcast wake-up many waiters can share."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, at_most: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), at_most)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    cursor: Cursor


@dataclass(frozen=True, slots=True)
class End:
    all_final: bool  # False: the server is shutting down
    cursor: Cursor


WatchItem = StatusEvent | Heartbeat | End


@dataclass(frozen=True, slots=True)
class WatchConfig:
    heartbeat_seconds: float = 15.0
    poll_seconds: float = 0.5


class Watcher:
    def __init__(self, log: EventLog, signal: Signal, config: WatchConfig,
                 shutting_down: asyncio.Event) -> None:
        self._log = log
        self._signal = signal
        self._config = config
        self._shutting_down = shutting_down

    async def watch(self, tenant: uuid.UUID, ids: Sequence[uuid.UUID],
                    after: Cursor | None) -> AsyncIterator[WatchItem]:
        """Checks the request up front (errors before the first item), then streams."""
        finals = await self._final_events(tenant, ids) if ids else None
        if after is None:
            after = Cursor(0, 0) if ids else Cursor(await self._log.horizon() - 1, _END_OF_TXID)
        return self._follow(tenant, list(ids), after, finals)

    async def _final_events(self, tenant: uuid.UUID,
                            ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Cursor | None]:
        targets = await self._log.watch_targets(tenant, ids)
        missing = set(ids) - {t.id for t in targets}
        if missing:
            raise NotFound(f"message {sorted(missing)[0]} not found")
        return {t.id: t.last_event if t.status in FINAL else None for t in targets}

    async def _follow(self, tenant: uuid.UUID, ids: list[uuid.UUID], cursor: Cursor,
                      finals: dict[uuid.UUID, Cursor | None] | None) -> AsyncIterator[WatchItem]:
        quiet_since = time.monotonic()
        while not self._shutting_down.is_set():
            page = await self._read(tenant, ids, cursor)
            for event in page.events:
                yield event
                cursor = event.cursor
                if finals is not None and event.status in FINAL:
                    finals[event.message_id] = event.cursor
            if page.events:
                quiet_since = time.monotonic()
            if len(page.events) == PAGE:
                continue
            cursor = max(cursor, Cursor(page.horizon - 1, _END_OF_TXID))
            if finals is not None and _all_seen(finals, cursor):
                yield End(all_final=True, cursor=cursor)
                return
            if time.monotonic() - quiet_since >= self._config.heartbeat_seconds:
                yield Heartbeat(cursor)
                quiet_since = time.monotonic()
            await self._signal.wait(self._config.poll_seconds)
        yield End(all_final=False, cursor=cursor)

    async def _read(self, tenant: uuid.UUID, ids: list[uuid.UUID], cursor: Cursor) -> EventPage:
        if ids:
            return await self._log.for_messages(ids, cursor, PAGE)
        return await self._log.for_tenant(tenant, cursor, PAGE)


def _all_seen(finals: dict[uuid.UUID, Cursor | None], cursor: Cursor) -> bool:
    return all(c is not None and c <= cursor for c in finals.values())
