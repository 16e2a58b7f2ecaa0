"""Supervised loops: nothing ends a loop silently, readiness names a failing one."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from smsgw.domain.errors import Unavailable
from smsgw.supervision import Backoff, HealthBoard, Supervised
from smsgw.throttled_log import ThrottledLog

FAST = Backoff(0.001, 0.005)


class Flaky:
    """A step that fails a given number of times, then works."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.done = asyncio.Event()

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        self.done.set()
        await asyncio.sleep(0.001)


async def test_a_failing_step_is_logged_restarted_and_the_loop_recovers(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="smsgw.supervision")
    board = HealthBoard()
    step = Flaky(3, RuntimeError("a bug"))
    loop = Supervised("flaky", step, board, backoff=FAST)
    await loop.start()
    await asyncio.wait_for(step.done.wait(), 5)
    await asyncio.sleep(0.01)
    assert board.ready() and board.checks()["flaky"][0]
    await loop.stop()
    assert step.calls > 3
    failures = [r for r in caplog.records if r.getMessage() == "loop failed, restarting it"]
    assert failures and failures[0].exc_info is not None  # the traceback is kept
    assert any(r.getMessage() == "loop recovered" for r in caplog.records)


async def test_while_steps_fail_the_board_names_the_loop_and_is_not_ready() -> None:
    board = HealthBoard()
    loop = Supervised("relay-claim", Flaky(10**6, Unavailable("database unavailable")), board,
                      backoff=FAST)
    await loop.start()
    await asyncio.sleep(0.05)
    ok, detail, critical = board.checks()["relay-claim"]
    assert not ok and "database unavailable" in detail and critical
    assert not board.ready()
    await loop.stop()
    assert "relay-claim" not in board.checks()  # a stopped loop is not reported


async def test_a_loop_that_is_not_critical_never_makes_the_board_unready() -> None:
    board = HealthBoard()
    loop = Supervised("smpp-a#0", Flaky(10**6, Unavailable("bind failed")), board,
                      backoff=FAST, critical=False)
    await loop.start()
    await asyncio.sleep(0.02)
    assert not board.checks()["smpp-a#0"][0] and board.ready()
    await loop.stop()


async def test_start_and_stop_are_idempotent_and_stop_waits_for_the_step() -> None:
    board = HealthBoard()
    finished = []

    async def step() -> None:
        await loop.pause(10)  # a wait that stop() cuts short
        finished.append(True)

    loop = Supervised("waits", step, board)
    await loop.start()
    await loop.start()
    await asyncio.sleep(0.01)
    await loop.stop()
    await loop.stop()
    assert finished == [True] and not loop.running


async def test_a_step_that_ignores_stop_is_cancelled_after_the_timeout() -> None:
    cancelled = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    loop = Supervised("stubborn", stubborn, HealthBoard(), stop_timeout_seconds=0.05)
    await loop.start()
    await asyncio.sleep(0.01)
    await loop.stop()
    assert cancelled.is_set()


def test_repeated_warnings_are_one_line_per_interval_with_a_count(
        caplog: pytest.LogCaptureFixture) -> None:
    throttled = ThrottledLog(logging.getLogger("test.throttled"), interval_seconds=3600)
    for _ in range(500):
        throttled.warning("cache", "idempotency cache unavailable")
    throttled.warning("other", "another problem")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["idempotency cache unavailable", "another problem"]
    throttled._last["cache"] -= 7200  # the interval has passed
    throttled.warning("cache", "idempotency cache unavailable")
    assert caplog.records[-1].__dict__["repeated"] == 499


def test_backoff_grows_with_full_jitter_up_to_its_cap() -> None:
    backoff, rng = Backoff(0.1, 2.0), random.Random(1)
    assert all(0.05 <= backoff.delay(1, rng) <= 0.1 for _ in range(50))
    assert all(1.0 <= backoff.delay(30, rng) <= 2.0 for _ in range(50))
