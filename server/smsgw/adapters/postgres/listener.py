"""One LISTEN connection per process, fanning notifications out to subscribers.

Subscribers get a wake-up, not a payload: they re-read the database, so a
missed or coalesced notification costs latency, never data. The poll
intervals of the relay and the watch streams cover a lost connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

import asyncpg

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class Listener:
    def __init__(self, url: str, channels: tuple[str, ...]) -> None:
        self._url = url
        self._channels = channels
        self._subscribers: dict[str, list[Callback]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]:
        self._subscribers[channel].append(callback)
        return lambda: self._subscribers[channel].remove(callback)

    async def start(self) -> None:
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._run(), name="pg-listener")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = 0.2
        while not self._stopping.is_set():
            try:
                await self._listen_until_lost()
                delay = 0.2
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("listen connection lost, retrying", extra={"error": str(exc)})
            self._wake_all()  # something may have happened while we were deaf
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, 5.0)

    async def _listen_until_lost(self) -> None:
        conn = await asyncpg.connect(self._url)
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _c: lost.set())
        try:
            for channel in self._channels:
                await conn.add_listener(channel, self._on_notify)
            await lost.wait()
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=1)

    def _on_notify(self, _conn: object, _pid: int, channel: str, _payload: str) -> None:
        for callback in list(self._subscribers[channel]):
            callback()

    def _wake_all(self) -> None:
        for callbacks in list(self._subscribers.values()):
            for callback in list(callbacks):
                callback()
