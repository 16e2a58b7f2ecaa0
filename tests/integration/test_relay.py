"""The outbox relay against real Postgres, with a provider that counts what it is given.

A provider is outside our control, so at this tier a faithful fake stands in
for it: it implements the SendPort protocol and records every hand-over.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import uuid

import pytest

from smsgw.adapters.postgres.messages import MessageRepository
from smsgw.adapters.postgres.outbox import OutboxRepository
from smsgw.adapters.postgres.tenants import TenantDirectory
from smsgw.domain.breaker import BreakerConfig, CircuitBreaker
from smsgw.domain.retry import RetryPolicy
from smsgw.domain.routing import Router, RouteRule, WeightedProvider
from smsgw.domain.validation import Limits, SendRequest, validate
from smsgw.ports import OutboundMessage, ProviderError, ReceiptSink, SendResult
from smsgw.services.claims import claim_due
from smsgw.services.dispatch import Dispatcher, ProviderSlot
from smsgw.services.relay import Relay, RelayConfig
from smsgw.services.submitter import Submitter

pytestmark = pytest.mark.integration
FAST = RelayConfig(batch_size=50, poll_seconds=0.05, lease_seconds=30, coalesce_seconds=0.001)


class CountingProvider:
    name = "counting"

    def __init__(self, failures: dict[int, ProviderError] | None = None) -> None:
        self.sent: collections.Counter[uuid.UUID] = collections.Counter()
        self.failures = failures or {}  # attempt number -> error to raise

    async def start(self, on_receipt: ReceiptSink) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: OutboundMessage) -> SendResult:
        await asyncio.sleep(0.001)
        self.sent[message.id] += 1
        if message.attempt in self.failures:
            raise self.failures[message.attempt]
        return SendResult(provider_message_id=f"p-{message.id.hex}-{message.attempt}")


def pool(provider, retry: RetryPolicy | None = None) -> Dispatcher:
    """One provider behind a breaker that never opens: these tests are about the relay."""
    patient = BreakerConfig(consecutive_failures=10**6, min_calls=10**6)
    slot = ProviderSlot(provider, CircuitBreaker(patient), retry or RetryPolicy(),
                        max_in_flight=1000)
    return Dispatcher(Router([RouteRule("all", (WeightedProvider(provider.name),))]),
                      {provider.name: slot})


async def accept(db, count: int, **changes: object) -> list[uuid.UUID]:
    tenant, _ = await TenantDirectory(db).create(f"t-{uuid.uuid4().hex[:6]}")
    items = [dataclasses.replace(
        validate(SendRequest(to="+16502530000", body=f"m{i}", idempotency_key=f"k{i}"),
                 Limits()), **changes) for i in range(count)]
    outcomes = await Submitter(MessageRepository(db), None).submit_many(tenant.id, items)
    return [o.message.id for o in outcomes]


async def wait_until_outbox_empty(db, seconds: float = 30) -> None:
    async with asyncio.timeout(seconds), db.connection() as conn:
        while await conn.fetchval("SELECT count(*) FROM outbox"):
            await asyncio.sleep(0.05)


async def statuses(db) -> collections.Counter[int]:
    async with db.connection() as conn:
        return collections.Counter({r[0]: r[1] for r in await conn.fetch(
            "SELECT status, count(*) FROM messages GROUP BY status")})


async def run_relays(relays, db) -> None:
    for relay in relays:
        await relay.start()
    try:
        await wait_until_outbox_empty(db)
    finally:
        for relay in relays:
            await relay.stop()


async def test_two_relays_share_the_outbox_and_send_each_message_once(db):
    ids = await accept(db, 400)
    provider = CountingProvider()
    relays = [Relay(OutboxRepository(db), pool(provider), FAST, owner=name)
              for name in ("relay-a", "relay-b")]
    await run_relays(relays, db)
    assert set(provider.sent) == set(ids)
    assert set(provider.sent.values()) == {1}
    assert await statuses(db) == {3: 400}
    async with db.connection() as conn:
        owners = await conn.fetchval("SELECT count(DISTINCT provider_message_id) FROM messages")
    assert owners == 400


async def test_a_dead_relays_lease_is_taken_over(db):
    ids = await accept(db, 20)
    outbox = OutboxRepository(db)
    claimed = (await claim_due(outbox, "dead-relay", 100, 0.3)).messages
    assert {m.id for m in claimed} == set(ids)
    provider = CountingProvider()
    survivor = Relay(outbox, pool(provider), FAST, owner="survivor")
    assert (await claim_due(outbox, "survivor", 100, 30)).messages == []  # still leased
    await run_relays([survivor], db)
    assert set(provider.sent) == set(ids)
    async with db.connection() as conn:
        attempts = {r[0] for r in await conn.fetch("SELECT attempts FROM messages")}
        sending_events = await conn.fetchval(
            "SELECT count(*) FROM message_events WHERE status = 2")
    assert attempts == {2}  # the dead relay's attempt is counted, not forgotten
    assert sending_events == 20  # QUEUED -> SENDING happened once per message
    assert await statuses(db) == {3: 20}


async def test_retryable_failure_reschedules_with_backoff_and_keeps_the_count(db):
    await accept(db, 5)
    provider = CountingProvider({1: ProviderError("THROTTLED", "slow down", retryable=True)})
    relay = Relay(OutboxRepository(db),
                  pool(provider, RetryPolicy(max_attempts=3, base_seconds=0.05, cap_seconds=0.1)),
                  FAST)
    await run_relays([relay], db)
    assert set(provider.sent.values()) == {2}
    async with db.connection() as conn:
        history = [tuple(r) for r in await conn.fetch(
            "SELECT status, error_code FROM message_events WHERE message_id = "
            "(SELECT id FROM messages LIMIT 1) ORDER BY txid, id")]
        attempts = {r[0] for r in await conn.fetch("SELECT attempts FROM messages")}
    assert history == [(1, ""), (2, ""), (1, "THROTTLED"), (2, ""), (3, "")]
    assert attempts == {2}
    assert await statuses(db) == {3: 5}


async def test_permanent_failure_and_exhausted_retries_end_in_failed(db):
    await accept(db, 4)
    permanent = CountingProvider({1: ProviderError("REJECTED", "bad number", retryable=False)})
    await run_relays([Relay(OutboxRepository(db), pool(permanent), FAST)], db)
    assert set(permanent.sent.values()) == {1}
    assert await statuses(db) == {6: 4}

    await accept(db, 3)
    always = CountingProvider({n: ProviderError("DOWN", "5xx", retryable=True) for n in (1, 2)})
    await run_relays([Relay(OutboxRepository(db),
                            pool(always, RetryPolicy(max_attempts=2, base_seconds=0.01)),
                            FAST)], db)
    assert set(always.sent.values()) == {2}
    async with db.connection() as conn:
        failed = await conn.fetch("SELECT error_code FROM messages WHERE status = 6")
    assert [r[0] for r in failed].count("DOWN") == 3
    async with db.connection() as conn:
        dead = await conn.fetch("SELECT attempts FROM dead_letters")
    # Exhausted retries (not a permanent refusal) land in the dead letters, every attempt kept.
    assert len(dead) == 3
    assert all([a["attempt"] for a in json.loads(r[0])] == [1, 2] for r in dead)


async def test_messages_past_their_maximum_age_expire_unsent(db):
    await accept(db, 3, expire_at=None)  # stored before validity: the maximum age decides
    provider = CountingProvider()
    stale = RelayConfig(poll_seconds=0.05, max_age_seconds=0, coalesce_seconds=0.001)
    await run_relays([Relay(OutboxRepository(db), pool(provider), stale)], db)
    assert not provider.sent
    assert await statuses(db) == {8: 3}
