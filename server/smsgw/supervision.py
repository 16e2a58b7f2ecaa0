"""Supervised loops: the one way this gateway runs anything in the background.

A background part (the relay's claim and record loops, receipts, webhooks,
pollers, the LISTEN connection, provider sessions) is written as a *step*:
one round of its work, called again and again. The supervisor around it is
what makes a store going away a normal day:

- a step that raises is logged (a store outage as a rate-limited warning,
  anything else with its traceback), backs off with full jitter and runs
  again; no exception ends a loop silently;
- while its steps fail, the loop is *down* on the ``HealthBoard``, which
  ``/readyz`` and the gRPC health service read, naming it; the next step
  that completes (or a step that says ``healthy()`` mid-way, for steps that
  hold a connection open) puts it back up;
- ``start()`` and ``stop()`` are idempotent; ``stop()`` asks the step to end
  at its next wait and cancels it only after a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from smsgw import metrics
from smsgw.domain.errors import Unavailable
from smsgw.throttled_log import ThrottledLog

log = logging.getLogger(__name__)
_warnings = ThrottledLog(log, interval_seconds=10.0)

Step = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class _Entry:
    ok: bool = True
    detail: str = ""
    critical: bool = True


@dataclass
class HealthBoard:
    """Which background loops are running well: what readiness reports besides the stores.

    A loop that is not *critical* (a carrier's session: the gateway still
    accepts and queues while one carrier is away) is reported but does not
    make the process unready.
    """

    _entries: dict[str, _Entry] = field(default_factory=dict)

    def register(self, name: str, *, critical: bool = True) -> None:
        self._entries.setdefault(name, _Entry(critical=critical))
        metrics.LOOP_UP.labels(name).set(1)

    def up(self, name: str) -> None:
        entry = self._entries.get(name)
        if entry is not None and not entry.ok:
            entry.ok, entry.detail = True, ""
            metrics.LOOP_UP.labels(name).set(1)

    def down(self, name: str, detail: str) -> None:
        entry = self._entries.setdefault(name, _Entry())
        entry.ok, entry.detail = False, detail
        metrics.LOOP_UP.labels(name).set(0)

    def forget(self, name: str) -> None:
        self._entries.pop(name, None)
        with contextlib.suppress(KeyError):
            metrics.LOOP_UP.remove(name)

    def checks(self) -> dict[str, tuple[bool, str, bool]]:
        """name -> (ok, detail, critical), for the readiness report."""
        return {name: (e.ok, e.detail, e.critical) for name, e in self._entries.items()}

    def ready(self) -> bool:
        return all(e.ok for e in self._entries.values() if e.critical)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full-jitter exponential backoff between failed steps."""

    base_seconds: float = 0.1
    cap_seconds: float = 1.0

    def delay(self, failures: int, rng: random.Random) -> float:
        ceiling = min(self.cap_seconds, self.base_seconds * 2 ** min(failures - 1, 30))
        return rng.uniform(ceiling / 2, ceiling)


class Supervised:
    """Runs ``step`` over and over until stopped, restarting it after any error."""

    def __init__(self, name: str, step: Step, board: HealthBoard, *,
                 backoff: Backoff = Backoff(), critical: bool = True,
                 stop_timeout_seconds: float = 10.0) -> None:
        self.name = name
        self._step = step
        self._board = board
        self._backoff = backoff
        self._critical = critical
        self._stop_timeout = stop_timeout_seconds
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()
        self.stopping = asyncio.Event()
        self._restarts = metrics.LOOP_RESTARTS.labels(name)

    @property
    def running(self) -> bool:
        return self._task is not None

    async def start(self) -> None:
        if self._task is None:
            self.stopping.clear()
            self._board.register(self.name, critical=self._critical)
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Lets the step end at its next wait; cancels it if that takes too long."""
        task, self._task = self._task, None
        if task is None:
            return
        self.stopping.set()
        done, _ = await asyncio.wait({task}, timeout=self._stop_timeout)
        if not done:
            log.warning("loop did not stop in time, cancelling it", extra={"loop": self.name})
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._board.forget(self.name)

    def healthy(self) -> None:
        """Called by a step that holds something open for long: it works now."""
        self._board.up(self.name)

    async def pause(self, seconds: float) -> None:
        """Sleeps, but wakes at once when the loop is asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                await self._step()
            except Exception as exc:
                failures += 1
                self._failed(exc, failures)
                await self.pause(self._backoff.delay(failures, self._rng))
                continue
            if failures:
                log.info("loop recovered", extra={"loop": self.name, "failures": failures})
                failures = 0
            self._board.up(self.name)

    def _failed(self, exc: Exception, failures: int) -> None:
        self._restarts.inc()
        detail = f"{type(exc).__name__}: {exc}"[:300]
        self._board.down(self.name, detail)
        fields = {"loop": self.name, "error": detail, "failures": failures}
        if isinstance(exc, Unavailable):
            _warnings.warning(f"{self.name}:unavailable", "loop cannot run, retrying",
                              extra=fields)
        else:  # a bug: keep the traceback
            _warnings.error(f"{self.name}:{type(exc).__name__}", "loop failed, restarting it",
                            extra=fields, exc_info=exc)


async def wait_for_event(event: asyncio.Event, *others: asyncio.Event,
                         at_most: float | None = None) -> None:
    """Waits until any of the events is set, or ``at_most`` seconds pass."""
    waiters = [asyncio.ensure_future(e.wait()) for e in (event, *others)]
    try:
        await asyncio.wait(waiters, timeout=at_most, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
