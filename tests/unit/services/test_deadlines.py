"""One timer for many sends: a send past its deadline times out, others are untouched."""

from __future__ import annotations

import asyncio

import pytest

from smsgw.ports import OutboundMessage, SendResult
from smsgw.services.claims import claim_due
from smsgw.services.deadlines import Deadlines
from smsgw.services.dispatch import Failed
from smsgw.services.submitter import Submitter
from tests.unit.services.conftest import ScriptedProvider, pool, submission


async def test_an_answer_in_time_is_returned() -> None:
    async def quick() -> str:
        await asyncio.sleep(0)
        return "ok"

    assert await Deadlines(tick=0.01).run(quick(), 5) == "ok"


async def test_a_send_that_never_answers_times_out_and_the_others_go_on() -> None:
    deadlines = Deadlines(tick=0.01)
    never = asyncio.create_task(deadlines.run(asyncio.Event().wait(), 0.05))
    slow = asyncio.create_task(deadlines.run(asyncio.sleep(0.2, "late"), 5))
    with pytest.raises(TimeoutError):
        await never
    assert await slow == "late"


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    deadlines = Deadlines(tick=0.01)
    task = asyncio.create_task(deadlines.run(asyncio.Event().wait(), 5))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelled_at_its_deadline_by_both_stays_a_cancellation() -> None:
    deadlines = Deadlines(tick=0.01)
    task = asyncio.create_task(deadlines.run(asyncio.Event().wait(), 0.01))
    await asyncio.sleep(0)
    task.cancel()  # before or together with the sweep: the caller's cancel wins
    await asyncio.sleep(0.05)
    with pytest.raises(asyncio.CancelledError):
        await task


class Silent(ScriptedProvider):
    """A carrier that takes the request and never answers."""

    async def send(self, message: OutboundMessage) -> SendResult:
        self.sent[message.id] += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_a_provider_that_never_answers_is_a_retryable_timeout(memory, tenant) -> None:
    (accepted,) = await Submitter(memory.messages, None).submit_many(tenant, [submission("k")])
    assert accepted.message is not None
    (outbound,) = (await claim_due(memory.outbox, "relay", 1, 30)).messages
    dispatcher = pool(Silent())
    dispatcher.slots["scripted"].send_timeout_seconds = 0.05
    async with asyncio.timeout(5):  # the test's own bound: without deadlines it would hang
        done = await dispatcher.dispatch(outbound, outbound.traffic_class)
    assert isinstance(done, Failed)
    assert (done.error.code, done.error.retryable) == ("PROVIDER_TIMEOUT", True)
