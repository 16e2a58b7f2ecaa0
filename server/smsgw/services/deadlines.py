"""Timeouts for many concurrent sends with one timer, not one per send.

Every hand-over to a provider is bounded (a carrier that never answers must
not hold a message forever), but an ``asyncio.timeout`` per send puts a
timer in the event loop's heap and takes it out again for each of thousands
of sends a second: on the relay's hot path that was a tenth of its CPU.
Here a send only notes its deadline in a dict; one sweep, every ``tick``
seconds while anything is waiting, cancels the sends past theirs, and the
cancelled send raises ``TimeoutError`` as ``asyncio.timeout`` would. A
deadline is therefore kept to within ``tick`` (0.25 s against timeouts of
seconds), which is what a send timeout needs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Deadlines:
    def __init__(self, tick: float = 0.25) -> None:
        self._tick = tick
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeping = False

    async def run(self, awaitable: Awaitable[T], seconds: float) -> T:
        """Awaits ``awaitable``; ``TimeoutError`` once ``seconds`` (±tick) have passed."""
        task = asyncio.current_task()
        assert task is not None
        self._due[task] = time.monotonic() + seconds
        if not self._sweeping:
            self._sweeping = True
            asyncio.get_running_loop().call_later(self._tick, self._sweep)
        try:
            return await awaitable
        except asyncio.CancelledError:
            # Ours: a timeout, unless someone else cancelled the task as well.
            if task in self._expired and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            self._due.pop(task, None)
            self._expired.discard(task)

    def _sweep(self) -> None:
        now = time.monotonic()
        for task, deadline in self._due.items():
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        if self._due:
            asyncio.get_running_loop().call_later(self._tick, self._sweep)
        else:
            self._sweeping = False
