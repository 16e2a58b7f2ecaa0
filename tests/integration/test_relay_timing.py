"""The relay and time on Postgres: scheduled sends, validity that runs out, quiet hours."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid
from zoneinfo import ZoneInfo

import pytest

from smsgw.adapters.postgres.messages import MessageRepository
from smsgw.adapters.postgres.outbox import OutboxRepository
from smsgw.adapters.postgres.tenants import TenantDirectory
from smsgw.domain.breaker import BreakerConfig, CircuitBreaker
from smsgw.domain.policy import QuietHours, TenantPolicy
from smsgw.domain.retry import RetryPolicy
from smsgw.domain.routing import Router, RouteRule, WeightedProvider
from smsgw.domain.status import MessageStatus as S
from smsgw.domain.validation import Limits, SendRequest, validate
from smsgw.ports import OutboundMessage, SendResult
from smsgw.services.dispatch import Dispatcher, ProviderSlot
from smsgw.services.policies import PolicyCache
from smsgw.services.quiet import QuietHold
from smsgw.services.relay import Relay, RelayConfig
from smsgw.services.submitter import Submitter
from tests.integration.test_relay import CountingProvider, pool

pytestmark = pytest.mark.integration
# A poll far longer than these tests wait: only the next-due wake-up sends in time.
SLEEPY = RelayConfig(batch_size=50, poll_seconds=3600, lease_seconds=30, coalesce_seconds=0.001)
FAST = RelayConfig(batch_size=50, poll_seconds=0.05, lease_seconds=30, coalesce_seconds=0.001)
TO = "+16502530000"  # California


class StampingProvider(CountingProvider):
    def __init__(self) -> None:
        super().__init__()
        self.at: dict[uuid.UUID, dt.datetime] = {}

    async def send(self, message: OutboundMessage) -> SendResult:
        self.at[message.id] = dt.datetime.now(dt.UTC)
        return await super().send(message)


async def accept(db, tenant: uuid.UUID, count: int = 1, **changes: object) -> list[uuid.UUID]:  # type: ignore[no-untyped-def]
    items = [dataclasses.replace(validate(SendRequest(
        to=TO, body=f"m{i}", idempotency_key=uuid.uuid4().hex), Limits()), **changes)
        for i in range(count)]
    outcomes = await Submitter(MessageRepository(db), None).submit_many(tenant, items)
    return [o.message.id for o in outcomes]


async def new_tenant(db) -> uuid.UUID:  # type: ignore[no-untyped-def]
    return (await TenantDirectory(db).create(f"t-{uuid.uuid4().hex[:6]}"))[0].id


async def rows(db, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[S, int, str]]:  # type: ignore[no-untyped-def]
    async with db.connection() as conn:
        found = await conn.fetch("SELECT id, status, attempts, error_code FROM messages "
                                 "WHERE id = ANY($1)", ids)
    return {r["id"]: (S(r["status"]), r["attempts"], r["error_code"]) for r in found}


async def until(check, seconds: float = 30) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):  # a bound on hanging, never a measurement
        while not await check():
            await asyncio.sleep(0.05)


async def test_scheduled_messages_leave_when_due_and_never_before(db) -> None:
    tenant = await new_tenant(db)
    send_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    scheduled = await accept(db, tenant, 20, send_at=send_at)
    provider = StampingProvider()
    relay = Relay(OutboxRepository(db), pool(provider), SLEEPY)
    await relay.start()
    try:
        async def all_sent() -> bool:
            return {s for s, _, _ in (await rows(db, scheduled)).values()} == {S.SENT}
        await until(all_sent)
    finally:
        await relay.stop()
    assert set(provider.sent) == set(scheduled) and set(provider.sent.values()) == {1}
    assert min(provider.at.values()) >= send_at


async def test_messages_whose_validity_ends_while_every_breaker_is_open_expire_unsent(
        db) -> None:
    tenant = await new_tenant(db)
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    ids = await accept(db, tenant, 5, expire_at=ends)
    provider = CountingProvider()
    breaker = CircuitBreaker(BreakerConfig(consecutive_failures=1, cooldown_seconds=3600))
    breaker.record(True, time.monotonic())  # open: the relay claims nothing
    slot = ProviderSlot(provider, breaker, RetryPolicy(), max_in_flight=10)
    dispatcher = Dispatcher(Router([RouteRule("all", (WeightedProvider(provider.name),))]),
                            {provider.name: slot})
    outbox = OutboxRepository(db)
    relay = Relay(outbox, dispatcher, FAST)
    await relay.start()
    try:
        async def swept() -> bool:
            await outbox.expire_overdue()
            return await outbox.depth() == 0
        await until(swept)
    finally:
        await relay.stop()
    assert not provider.sent
    assert set((await rows(db, ids)).values()) == {(S.EXPIRED, 0, "VALIDITY_EXPIRED")}


def window_around_now(zone: str) -> QuietHours:
    local = dt.datetime.now(ZoneInfo(zone))
    return QuietHours((local - dt.timedelta(hours=1)).time().replace(microsecond=0),
                      (local + dt.timedelta(hours=1)).time().replace(microsecond=0))


async def test_marketing_inside_the_recipients_quiet_hours_waits_for_them_to_end(db) -> None:
    tenant = await new_tenant(db)
    tenants = TenantDirectory(db)
    window = window_around_now("America/Los_Angeles")
    assert await tenants.set_policy(tenant, TenantPolicy(quiet_hours=window))
    policies = PolicyCache(tenants)
    await policies.refresh()
    marketing = await accept(db, tenant, 3, traffic_class="marketing")
    transactional = await accept(db, tenant, 2, traffic_class="transactional")
    provider = CountingProvider()
    relay = Relay(OutboxRepository(db), pool(provider), FAST, hold=QuietHold(policies))
    await relay.start()
    try:
        async def settled() -> bool:
            got = await rows(db, marketing + transactional)
            return all(got[i][0] is S.SENT for i in transactional) and all(
                got[i] == (S.QUEUED, 0, "QUIET_HOURS") for i in marketing)
        await until(settled)
    finally:
        await relay.stop()
    assert set(provider.sent) == set(transactional)
    async with db.connection() as conn:
        due = await conn.fetch("SELECT due_at, lease_owner FROM outbox WHERE message_id = ANY($1)",
                               marketing)
    local_end = dt.datetime.combine(dt.datetime.now(ZoneInfo("America/Los_Angeles")).date(),
                                    window.end, tzinfo=ZoneInfo("America/Los_Angeles"))
    if local_end < dt.datetime.now(dt.UTC):
        local_end += dt.timedelta(days=1)  # the window crossed midnight
    # Rescheduled to the opening (give or take the write-back), released by the relay.
    assert len(due) == 3 and {r["lease_owner"] for r in due} == {None}
    assert all(abs(r["due_at"] - local_end) < dt.timedelta(seconds=30) for r in due)
