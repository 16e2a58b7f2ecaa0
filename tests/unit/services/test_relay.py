"""The relay's policies, on the in-memory stores: retries, dead letters, expiry, deferral."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random

from smsgw.adapters.memory import MemoryStores
from smsgw.domain.model import Cursor
from smsgw.domain.records import DeadLetterFilter
from smsgw.domain.retry import RetryPolicy
from smsgw.domain.status import MessageStatus as S
from smsgw.ports import ProviderError
from smsgw.services.claims import claim_due
from smsgw.services.relay import Relay, RelayConfig
from smsgw.services.submitter import Submitter
from tests.unit.services.conftest import ScriptedProvider, pool, relay_until_empty, submission

FAST = RelayConfig(batch_size=50, poll_seconds=0.01, lease_seconds=30, coalesce_seconds=0)
BUSY = ProviderError("BUSY", "carrier busy", retryable=True)
REFUSED = ProviderError("REFUSED", "no such number", retryable=False)


async def accept(memory: MemoryStores, tenant, count: int,  # type: ignore[no-untyped-def]
                 **changes):
    items = [dataclasses.replace(submission(f"k{i}"), **changes) for i in range(count)]
    outcomes = await Submitter(memory.messages, None).submit_many(tenant, items)
    return [o.message.id for o in outcomes]


async def statuses(memory: MemoryStores, tenant, ids) -> list[tuple[S, int]]:  # type: ignore[no-untyped-def]
    return [(m.status, m.attempts) for m in await memory.messages.get_many(tenant, ids)]


async def test_each_message_is_sent_once(memory, tenant) -> None:
    ids = await accept(memory, tenant, 100)
    provider = ScriptedProvider()
    await relay_until_empty(memory, Relay(memory.outbox, pool(provider), FAST))
    assert set(provider.sent) == set(ids) and set(provider.sent.values()) == {1}
    assert set(await statuses(memory, tenant, ids)) == {(S.SENT, 1)}


async def test_retryable_errors_retry_then_exhausted_ones_are_dead_letters(
        memory, tenant) -> None:
    ids = await accept(memory, tenant, 3)
    provider = ScriptedProvider({1: BUSY, 2: BUSY, 3: BUSY})
    retry = RetryPolicy(max_attempts=3, base_seconds=0.001, cap_seconds=0.002)
    await relay_until_empty(memory, Relay(memory.outbox, pool(provider, retry), FAST))
    assert set(await statuses(memory, tenant, ids)) == {(S.FAILED, 3)}
    letters = await memory.dead_letters.find(DeadLetterFilter(), 10)
    assert {d.message_id for d in letters} == set(ids)
    assert [a["attempt"] for a in letters[0].attempts] == [1, 2, 3]


async def test_a_retry_that_then_works_is_sent(memory, tenant) -> None:
    ids = await accept(memory, tenant, 5)
    provider = ScriptedProvider({1: BUSY})
    await relay_until_empty(memory, Relay(memory.outbox, pool(provider), FAST))
    assert set(await statuses(memory, tenant, ids)) == {(S.SENT, 2)}


async def test_a_permanent_refusal_fails_at_once_without_a_dead_letter(memory, tenant) -> None:
    ids = await accept(memory, tenant, 2)
    await relay_until_empty(memory, Relay(memory.outbox, pool(ScriptedProvider({1: REFUSED})),
                                          FAST))
    messages = await memory.messages.get_many(tenant, ids)
    assert {(m.status, m.error_code) for m in messages} == {(S.FAILED, "REFUSED")}
    assert await memory.dead_letters.find(DeadLetterFilter(), 10) == []


async def test_a_message_older_than_its_max_age_expires_and_is_never_sent(
        memory, tenant) -> None:
    # Stored before validity existed (no expire_at): the relay's maximum age decides.
    ids = await accept(memory, tenant, 2, expire_at=None)
    provider = ScriptedProvider()
    old = dataclasses.replace(FAST, max_age_seconds=-1)
    await relay_until_empty(memory, Relay(memory.outbox, pool(provider), old))
    assert not provider.sent
    assert {m.status for m in await memory.messages.get_many(tenant, ids)} == {S.EXPIRED}


async def test_a_message_past_its_validity_expires_and_is_never_sent(memory, tenant) -> None:
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    ids = await accept(memory, tenant, 2, expire_at=ended)
    provider = ScriptedProvider()
    await relay_until_empty(memory, Relay(memory.outbox, pool(provider), FAST))
    assert not provider.sent
    messages = await memory.messages.get_many(tenant, ids)
    assert {(m.status, m.error_code) for m in messages} == {(S.EXPIRED, "VALIDITY_EXPIRED")}


async def test_a_retry_past_the_validity_expires_instead(memory, tenant) -> None:
    ids = await accept(memory, tenant, 1,
                       expire_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60))
    provider = ScriptedProvider({1: BUSY})
    slow_retry = RetryPolicy(max_attempts=5, base_seconds=3600, cap_seconds=3600)
    await relay_until_empty(memory, Relay(memory.outbox, pool(provider, slow_retry), FAST,
                                          rng=LongestDraw()))
    # The retry would come an hour later, past the minute of validity left.
    (status, _attempts), = await statuses(memory, tenant, ids)
    assert status is S.EXPIRED and sum(provider.sent.values()) == 1


class LongestDraw(random.Random):
    """Full jitter's longest draw, so the retry delay is the policy's whole ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def deferred(memory: MemoryStores, tenant) -> int:  # type: ignore[no-untyped-def]
    """Messages put back (SENDING -> QUEUED) so far."""
    page = await memory.events.for_tenant(tenant, Cursor(0, 0), 1000)
    return sum(e.status is S.QUEUED and e.previous_status is S.SENDING for e in page.events)


class ExhaustedBucket:
    """A provider's shared rate limit with no token for a while."""

    async def acquire(self, max_wait_seconds: float) -> float | None:
        return 5.0

    def room(self, now: float) -> int:
        return 1 << 30


async def test_when_no_provider_can_take_it_the_attempt_is_given_back(
        memory, tenant) -> None:
    ids = await accept(memory, tenant, 3)
    provider = ScriptedProvider()
    dispatcher = pool(provider)
    dispatcher.slots["scripted"].bucket = ExhaustedBucket()
    relay = Relay(memory.outbox, dispatcher, FAST)
    await relay.start()
    async with asyncio.timeout(5):
        while await deferred(memory, tenant) < len(ids):
            await asyncio.sleep(0.005)
    await relay.stop()
    assert not provider.sent
    assert set(await statuses(memory, tenant, ids)) == {(S.QUEUED, 0)}  # claimed, refunded
    assert (await claim_due(memory.outbox, "other", 10, 30)).messages == []  # due again only in 5 s
