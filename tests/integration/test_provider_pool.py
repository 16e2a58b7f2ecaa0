"""The provider pool behind the relay, against real Postgres and Redis.

The providers are carrier simulators with fault injection: the carrier is
outside our control, the simulator plays it faithfully from our side of the
wire (latency, retryable and permanent refusals, receipts).
"""

from __future__ import annotations

import asyncio
import collections
import time

import pytest
import redis.asyncio as aioredis

from smsgw import metrics
from smsgw.adapters.postgres.dead_letters import DeadLetterRepository
from smsgw.adapters.postgres.outbox import OutboxRepository
from smsgw.adapters.redis_rate import SharedTokenBucket
from smsgw.domain.breaker import BreakerConfig, BreakerState, CircuitBreaker
from smsgw.domain.records import DeadLetterFilter
from smsgw.domain.retry import RetryPolicy
from smsgw.domain.routing import Router, RouteRule, WeightedProvider
from smsgw.services.dispatch import BreakerGauge, Dispatcher, ProviderSlot
from smsgw.services.relay import Relay, RelayConfig
from smsgw_simulators.carrier import CarrierSimulator, SimulatorConfig
from tests.integration.test_relay import accept, run_relays, statuses, wait_until_outbox_empty

pytestmark = pytest.mark.integration
FAST = RelayConfig(batch_size=50, poll_seconds=0.05, lease_seconds=30, coalesce_seconds=0.001)


def simulator(name: str, **faults: float) -> CarrierSimulator:
    return CarrierSimulator(SimulatorConfig(latency_ms=1, receipt_delay_ms=10, **faults),
                            name=name)


def slot(port: CarrierSimulator, breaker: BreakerConfig | None = None,
         retry: RetryPolicy | None = None, **limits: object) -> ProviderSlot:
    return ProviderSlot(port, CircuitBreaker(breaker or BreakerConfig(), BreakerGauge(port.name)),
                        retry or RetryPolicy(base_seconds=0.01, cap_seconds=0.05), **limits)


def pool(*slots: ProviderSlot) -> Dispatcher:
    route = RouteRule("default", tuple(WeightedProvider(s.name, 1 if n == 0 else 0)
                                       for n, s in enumerate(slots)))
    return Dispatcher(Router([route]), {s.name: s for s in slots})


def gauge(provider: str) -> float:
    return metrics.BREAKER_STATE.labels(provider)._value.get()


async def test_a_failing_provider_opens_its_circuit_and_traffic_fails_over(db):
    ids = await accept(db, 60)
    down, up = simulator("down", failure_rate=1.0), simulator("up")
    first = slot(down, BreakerConfig(consecutive_failures=3, cooldown_seconds=300))
    await run_relays([Relay(OutboxRepository(db), pool(first, slot(up)), FAST)], db)
    assert first.breaker.state is BreakerState.OPEN and gauge("down") == 1
    assert down.sent == 0 and up.sent == len(ids)
    assert await statuses(db) == {3: 60}
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT provider, route, attempts FROM messages")
    # Failover happens within the attempt: nobody waited for a retry.
    assert {(r["provider"], r["route"], r["attempts"]) for r in rows} == {("up", "default", 1)}


async def test_while_the_only_circuit_is_open_messages_wait_without_spending_attempts(db):
    await accept(db, 20)
    carrier = simulator("flaky")
    guarded = slot(carrier, BreakerConfig(consecutive_failures=2, cooldown_seconds=0.5,
                                          half_open_probes=1, probe_calls=2))
    for _ in range(2):
        guarded.breaker.record(True, time.monotonic())  # the carrier just went down
    assert gauge("flaky") == 1
    relay = Relay(OutboxRepository(db), pool(guarded), FAST)
    await relay.start()
    try:
        await asyncio.sleep(0.2)
        async with db.connection() as conn:
            attempts = await conn.fetchval("SELECT max(attempts) FROM messages")
        assert carrier.sent == 0 and attempts == 0
        async with asyncio.timeout(30):  # cooldown, probes, then everything
            while (await statuses(db)).get(3, 0) < 20:
                await asyncio.sleep(0.05)
    finally:
        await relay.stop()
    assert guarded.breaker.state is BreakerState.CLOSED and gauge("flaky") == 0
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT max(attempts) FROM messages") == 1


async def test_the_retry_schedule_then_the_dead_letter_queue_then_one_replay(db):
    await accept(db, 5)
    carrier = simulator("broken", failure_rate=1.0)
    never_open = BreakerConfig(consecutive_failures=10**6, min_calls=10**6)
    retry = RetryPolicy(max_attempts=3, base_seconds=0.02, cap_seconds=0.05)
    await run_relays([Relay(OutboxRepository(db), pool(slot(carrier, never_open, retry)),
                            FAST)], db)
    assert await statuses(db) == {6: 5}
    async with db.connection() as conn:
        history = [tuple(r) for r in await conn.fetch(
            "SELECT status, attempt, error_code FROM message_events WHERE message_id = "
            "(SELECT id FROM messages LIMIT 1) ORDER BY txid, id")]
    assert history == [(1, 0, ""), (2, 1, ""), (1, 1, "SIM_THROTTLED"), (2, 2, ""),
                       (1, 2, "SIM_THROTTLED"), (2, 3, ""), (6, 3, "SIM_THROTTLED")]
    letters = DeadLetterRepository(db)
    dead = await letters.find(DeadLetterFilter(provider="broken"), 10)
    assert len(dead) == 5
    assert [a["attempt"] for a in dead[0].attempts] == [1, 2, 3]
    assert dead[0].request["body"].startswith("m")

    first = await letters.replay([d.message_id for d in dead])
    again = await letters.replay([d.message_id for d in dead])
    assert {r.already_replayed for r in first} == {False}
    assert {r.already_replayed for r in again} == {True}
    assert {r.replay_message_id for r in first} == {r.replay_message_id for r in again}
    assert await statuses(db) == {6: 5, 1: 5}  # five new messages, sent once
    assert await letters.find(DeadLetterFilter(pending_only=True), 10) == []


async def test_a_permanent_refusal_fails_at_once_and_is_not_a_dead_letter(db):
    await accept(db, 3)
    carrier = simulator("strict", permanent_failure_rate=1.0)
    await run_relays([Relay(OutboxRepository(db), pool(slot(carrier)), FAST)], db)
    assert await statuses(db) == {6: 3}
    assert await DeadLetterRepository(db).find(DeadLetterFilter(), 10) == []


async def test_the_token_bucket_is_shared_by_every_process(redis_url):
    client = aioredis.from_url(redis_url)
    try:
        await client.delete("smsgw:rate:shared")
        # Two relays' buckets for one provider: 200/s with bursts of 20.
        buckets = [SharedTokenBucket(client, "shared", rate=200, burst=20) for _ in range(2)]
        granted: collections.Counter[int] = collections.Counter()
        started = time.monotonic()

        async def take(n: int) -> None:
            while time.monotonic() - started < 0.5:
                if await buckets[n].acquire(0.05) is None:
                    granted[n] += 1

        await asyncio.gather(take(0), take(1))
        elapsed = time.monotonic() - started
    finally:
        await client.aclose()
    # Never more than the burst plus what the rate refilled, however it was shared.
    assert sum(granted.values()) <= 20 + 200 * elapsed + 2 * buckets[0]._batch
    assert granted[0] > 0 and granted[1] > 0


async def test_a_carrier_failing_half_its_calls_keeps_carrying_with_the_default_breaker(db):
    """Retries and dead letters do the rest: with the seeds' breaker rules (more than half
    failing over 60 s, judged with confidence; closed again on the probes' share), a
    carrier that fails one call in two is never shut off for good."""
    await accept(db, 400)
    carrier = simulator("half", failure_rate=0.5)
    guarded = slot(carrier, BreakerConfig(cooldown_seconds=2),  # the defaults, a short cooldown
                   RetryPolicy(max_attempts=5, base_seconds=0.01, cap_seconds=0.05))
    relay = Relay(OutboxRepository(db), pool(guarded), FAST)
    await relay.start()
    try:
        await wait_until_outbox_empty(db, seconds=120)
    finally:
        await relay.stop()
    done = await statuses(db)
    assert set(done) <= {3, 6} and sum(done.values()) == 400  # SENT, or FAILED at the end
    assert done[3] >= 360  # about 1 - 0.5**5 of them: 388 expected
    dead = await DeadLetterRepository(db).find(DeadLetterFilter(provider="half"), 100)
    assert len(dead) == done.get(6, 0)
