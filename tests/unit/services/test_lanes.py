"""Lanes inside one process: a provider's tokens go to the highest lane waiting,
marketing keeps its share, and validity is checked again after the token wait."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid

from smsgw.domain.encoding import Encoding
from smsgw.domain.fairness import LaneTurns
from smsgw.domain.lanes import Lane
from smsgw.domain.status import MessageStatus as S
from smsgw.ports import OutboundMessage, SendResult
from smsgw.services.dispatch import Expired, Sent
from smsgw.services.gate import PriorityGate
from smsgw.services.relay import Relay, RelayConfig
from smsgw.services.submitter import Submitter
from tests.unit.services.conftest import ScriptedProvider, pool, relay_until_empty, submission


class HandedTokens:
    """A bucket that has a token only when the test hands one over."""

    def __init__(self) -> None:
        self.tokens = asyncio.Semaphore(0)
        self.waits = 0

    async def acquire(self, max_wait_seconds: float) -> float | None:
        self.waits += 1
        await self.tokens.acquire()
        return None

    def room(self, now: float) -> int:
        return 1 << 30


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_tokens_go_to_the_highest_lane_waiting_whoever_came_first() -> None:
    bucket = HandedTokens()
    gate = PriorityGate(bucket, marketing_min_share=0.0)
    order: list[str] = []

    async def send(name: str, lane: Lane) -> None:
        assert await gate.acquire(lane, 60) is None
        order.append(name)

    tasks = [asyncio.create_task(send(name, lane)) for name, lane in [
        ("m1", Lane.MARKETING), ("m2", Lane.MARKETING), ("m3", Lane.MARKETING),
        ("t1", Lane.TRANSACTIONAL), ("o1", Lane.OTP), ("o2", Lane.OTP)]]
    await settle()
    assert gate.waiting == 6 and bucket.waits == 1  # one holds the turn, the rest queue
    for _ in tasks:
        bucket.tokens.release()
        await settle()
    await asyncio.gather(*tasks)
    # m1 held the turn before the others arrived; then lane order, each lane in turn order.
    assert order == ["m1", "o1", "o2", "t1", "m2", "m3"] and gate.waiting == 0


async def test_a_waiter_that_gives_up_is_put_back_and_the_turn_moves_on() -> None:
    bucket = HandedTokens()
    gate = PriorityGate(bucket, marketing_min_share=0.0)
    holder = asyncio.create_task(gate.acquire(Lane.MARKETING, 60))
    await settle()
    assert await gate.acquire(Lane.MARKETING, 0.01) is not None  # no turn in time: put back
    otp = asyncio.create_task(gate.acquire(Lane.OTP, 60))
    bucket.tokens.release()
    bucket.tokens.release()
    assert await holder is None and await otp is None and gate.waiting == 0


def test_marketing_earns_its_share_of_turns_behind_a_flood_of_otp() -> None:
    turns = LaneTurns(min_share=0.1)
    served = [turns.next([Lane.OTP, Lane.MARKETING]) for _ in range(100)]
    assert served.count(Lane.MARKETING) == 10
    assert LaneTurns(min_share=0.0).next([Lane.OTP, Lane.MARKETING]) is Lane.OTP
    assert turns.next([Lane.MARKETING]) is Lane.MARKETING and turns.next([]) is None


def outbound(expire_at: dt.datetime | None, traffic_class: str = "otp") -> OutboundMessage:
    return OutboundMessage(id=uuid.uuid4(), tenant_id=uuid.uuid4(), to="+16502530000",
                           body="code 1", sender="", attempt=1, encoding=Encoding.GSM7,
                           traffic_class=traffic_class, expire_at=expire_at)


async def test_a_message_whose_validity_ended_during_the_token_wait_is_never_sent() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    clock = [now]

    class SlowTokens(HandedTokens):
        async def acquire(self, max_wait_seconds: float) -> float | None:
            clock[0] += dt.timedelta(seconds=5)  # the wait outlived the validity
            return None

    provider = ScriptedProvider()
    dispatcher = pool(provider)
    dispatcher._clock = lambda: clock[0]
    dispatcher.slots["scripted"].bucket = SlowTokens()
    late = outbound(now + dt.timedelta(seconds=2))
    assert await dispatcher.dispatch(late, "otp") == Expired("scripted", "all")
    assert not provider.sent
    timely = outbound(clock[0] + dt.timedelta(seconds=60))
    assert isinstance(await dispatcher.dispatch(timely, "otp"), Sent)
    old_row = outbound(None)  # stored before validity existed: the relay's age check decides
    assert isinstance(await dispatcher.dispatch(old_row, "otp"), Sent)
    assert set(provider.sent) == {timely.id, old_row.id}


async def test_the_relay_records_a_validity_that_ended_at_the_provider_as_expired(
        memory, tenant) -> None:  # type: ignore[no-untyped-def]
    submitted = dataclasses.replace(submission("k1"), traffic_class="otp",
                                    expire_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10))
    (accepted,) = await Submitter(memory.messages, None).submit_many(tenant, [submitted])
    provider = ScriptedProvider()
    dispatcher = pool(provider)
    # The token wait (here: the dispatcher's clock) outlives the OTP's ten minutes.
    dispatcher._clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    await relay_until_empty(memory, Relay(memory.outbox, dispatcher,
                                          RelayConfig(poll_seconds=0.01, coalesce_seconds=0)))
    (message,) = await memory.messages.get_many(tenant, [accepted.message.id])
    assert (message.status, message.error_code) == (S.EXPIRED, "VALIDITY_EXPIRED")
    assert not provider.sent


class TenTokensSoon(HandedTokens):
    """A bucket that can give about 20 tokens soon, each only when the test hands it."""

    def room(self, now: float) -> int:
        return 20


async def test_the_relay_claims_only_what_the_bucket_can_give_soon_and_an_otp_overtakes(
        memory, tenant) -> None:  # type: ignore[no-untyped-def]
    marketing = [dataclasses.replace(submission(f"m{i}"), traffic_class="marketing")
                 for i in range(100)]
    await Submitter(memory.messages, None).submit_many(tenant, marketing)
    provider = OrderedProvider()
    dispatcher = pool(provider)
    bucket = TenTokensSoon()
    dispatcher.slots["scripted"].bucket = bucket
    relay = Relay(memory.outbox, dispatcher, RelayConfig(poll_seconds=0.01, coalesce_seconds=0))
    await relay.start()
    try:
        await settle_until(lambda: count(memory, S.SENDING), lambda n: n >= 18)
        await settle()
        assert await count(memory, S.SENDING) <= 20  # the rest waits in the outbox
        otp = dataclasses.replace(submission("o1"), traffic_class="otp")
        (accepted,) = await Submitter(memory.messages, None).submit_many(tenant, [otp])
        relay.wake()
        bucket.tokens.release()  # one marketing send goes: room for the OTP's claim
        await settle_until(lambda: status_of(memory, tenant, accepted.message.id),
                           lambda s: s is S.SENDING)
        bucket.tokens.release()  # the token the turn's holder (marketing) waits for
        bucket.tokens.release()
        await settle_until(lambda: asyncio.sleep(0, len(provider.order)), lambda n: n >= 3)
        # Then the OTP, ahead of the 16 or more marketing sends still waiting.
        assert provider.order[:3] == ["marketing", "marketing", "otp"]
    finally:
        for _ in range(200):
            bucket.tokens.release()
        await relay.stop()


class OrderedProvider(ScriptedProvider):
    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []

    async def send(self, message: OutboundMessage) -> SendResult:
        self.order.append(message.traffic_class)
        return await super().send(message)


async def count(memory, status: S) -> int:  # type: ignore[no-untyped-def]
    return sum(1 for row in memory.state.messages.values() if row.message.status is status)


async def status_of(memory, tenant, message_id) -> S:  # type: ignore[no-untyped-def]
    return (await memory.messages.get_many(tenant, [message_id]))[0].status


async def settle_until(read, done) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(10):
        while not done(await read()):
            await asyncio.sleep(0.001)
