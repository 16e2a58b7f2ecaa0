"""One LISTEN connection per process, fanning notifications out to subscribers.

Subscribers get a wake-up, not a payload: they re-read the database, so a
missed or coalesced notification costs latency, never data. The poll
intervals of the relay and the watch streams cover a lost connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable

import asyncpg

from smsgw.adapters.postgres.database import translated_errors
from smsgw.domain.errors import Unavailable
from smsgw.supervision import HealthBoard, Supervised, wait_for_event

Callback = Callable[[], None]


class Listener:
    def __init__(self, url: str, channels: tuple[str, ...], board: HealthBoard,
                 connect_timeout_seconds: float = 5.0) -> None:
        self._url = url
        self._channels = channels
        self._connect_timeout = connect_timeout_seconds
        self._subscribers: dict[str, list[Callback]] = defaultdict(list)
        self._loop = Supervised("pg-listener", self._listen_until_lost, board)

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]:
        self._subscribers[channel].append(callback)
        return lambda: self._subscribers[channel].remove(callback)

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _listen_until_lost(self) -> None:
        """One LISTEN session: returns when asked to stop, raises when the connection is lost."""
        with translated_errors():
            conn = await asyncpg.connect(self._url, timeout=self._connect_timeout)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            with translated_errors():
                for channel in self._channels:
                    await conn.add_listener(channel, self._on_notify)
            self._loop.healthy()
            self._wake_all()  # something may have happened while we were deaf
            await wait_for_event(lost, self._loop.stopping)
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)
        if lost.is_set() and not self._loop.stopping.is_set():
            self._wake_all()
            raise Unavailable("the LISTEN connection was lost")

    def _on_notify(self, _conn: object, _pid: int, channel: str, _payload: str) -> None:
        for callback in list(self._subscribers[channel]):
            callback()

    def _wake_all(self) -> None:
        for callbacks in list(self._subscribers.values()):
            for callback in list(callbacks):
                callback()
