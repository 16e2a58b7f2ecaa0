"""The relay and time: scheduled rows wake it, quiet hours hold marketing, validity wins."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from zoneinfo import ZoneInfo

from smsgw.adapters.memory import MemoryStores
from smsgw.domain.policy import QuietHours, TenantPolicy
from smsgw.domain.records import OutboundMessage
from smsgw.domain.status import MessageStatus as S
from smsgw.services.claims import claim_due
from smsgw.services.policies import PolicyCache
from smsgw.services.quiet import QuietHold
from smsgw.services.relay import Relay, RelayConfig
from smsgw.services.submitter import Submitter
from tests.unit.services.conftest import ScriptedProvider, pool, submission

# A poll far longer than any test here waits: only the next-due wake-up can send in time.
SLEEPY = RelayConfig(batch_size=50, poll_seconds=3600, lease_seconds=30, coalesce_seconds=0)
FAST = RelayConfig(batch_size=50, poll_seconds=0.01, lease_seconds=30, coalesce_seconds=0)
TO = "+16502530000"  # California: America/Los_Angeles


async def accept(memory: MemoryStores, tenant: uuid.UUID, count: int = 1,
                 **changes: object) -> list[uuid.UUID]:
    items = [dataclasses.replace(submission(f"k{uuid.uuid4().hex}"), **changes)
             for _ in range(count)]
    outcomes = await Submitter(memory.messages, None).submit_many(tenant, items)
    return [o.message.id for o in outcomes]


class TimedProvider(ScriptedProvider):
    def __init__(self) -> None:
        super().__init__()
        self.at: dict[uuid.UUID, dt.datetime] = {}

    async def send(self, message: OutboundMessage):  # type: ignore[no-untyped-def]
        self.at[message.id] = dt.datetime.now(dt.UTC)
        return await super().send(message)


async def until(condition, seconds: float = 10) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(seconds):
        while not await condition():
            await asyncio.sleep(0.005)


async def test_a_scheduled_message_leaves_when_due_without_waiting_for_the_poll(
        memory, tenant) -> None:
    send_at = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=300)
    (message_id,) = await accept(memory, tenant, send_at=send_at)
    provider = TimedProvider()
    relay = Relay(memory.outbox, pool(provider), SLEEPY)
    await relay.start()
    try:
        await until(lambda: _depth_is(memory, 0))
    finally:
        await relay.stop()
    assert provider.sent[message_id] == 1 and provider.at[message_id] >= send_at


async def _depth_is(memory: MemoryStores, n: int) -> bool:
    return await memory.outbox.depth() == n


def window_around_now(zone: str) -> QuietHours:
    """Quiet from an hour ago to an hour from now, in ``zone``."""
    local = dt.datetime.now(ZoneInfo(zone))
    return QuietHours((local - dt.timedelta(hours=1)).time().replace(microsecond=0),
                      (local + dt.timedelta(hours=1)).time().replace(microsecond=0))


async def quiet_tenant(memory: MemoryStores, tenant: uuid.UUID) -> PolicyCache:
    window = window_around_now("America/Los_Angeles")
    await memory.tenants.set_policy(tenant, TenantPolicy(quiet_hours=window))
    policies = PolicyCache(memory.tenants)
    await policies.refresh()
    return policies


async def test_marketing_waits_for_the_quiet_hours_to_end_and_other_traffic_does_not(
        memory, tenant) -> None:
    hold = QuietHold(await quiet_tenant(memory, tenant))
    marketing = await accept(memory, tenant, 2, traffic_class="marketing")
    others = (await accept(memory, tenant, traffic_class="otp")
              + await accept(memory, tenant, traffic_class="transactional"))
    provider = ScriptedProvider()
    relay = Relay(memory.outbox, pool(provider), FAST, hold=hold)
    await relay.start()
    try:
        await until(lambda: _depth_is(memory, 2))
        await until(lambda: _all_queued(memory, tenant, marketing))
    finally:
        await relay.stop()
    assert set(provider.sent) == set(others)
    held = await memory.messages.get_many(tenant, marketing)
    assert {(m.status, m.attempts, m.error_code) for m in held} == {(S.QUEUED, 0, "QUIET_HOURS")}
    until_open = await memory.outbox.next_due()
    # Due again when the window ends, about an hour from now; never before.
    assert until_open is not None and dt.timedelta(minutes=58) < until_open
    assert until_open <= dt.timedelta(hours=1, seconds=1)
    assert (await claim_due(memory.outbox, "other", 10, 30)).messages == []


async def _all_queued(memory: MemoryStores, tenant: uuid.UUID, ids: list[uuid.UUID]) -> bool:
    return all(m.status is S.QUEUED and m.error_code
               for m in await memory.messages.get_many(tenant, ids))


async def test_quiet_hours_that_end_after_the_validity_expire_the_message(memory, tenant) -> None:
    hold = QuietHold(await quiet_tenant(memory, tenant))
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    ids = await accept(memory, tenant, traffic_class="marketing", expire_at=ends)
    provider = ScriptedProvider()
    relay = Relay(memory.outbox, pool(provider), FAST, hold=hold)
    await relay.start()
    try:
        await until(lambda: _depth_is(memory, 0))
    finally:
        await relay.stop()
    assert not provider.sent
    (message,) = await memory.messages.get_many(tenant, ids)
    assert (message.status, message.error_code) == (S.EXPIRED, "VALIDITY_EXPIRED")
    assert "quiet hours" in message.error_description


async def test_a_tenant_without_quiet_hours_is_never_held(memory, tenant) -> None:
    policies = PolicyCache(memory.tenants)
    await policies.refresh()
    ids = await accept(memory, tenant, traffic_class="marketing")
    provider = ScriptedProvider()
    relay = Relay(memory.outbox, pool(provider), FAST, hold=QuietHold(policies))
    await relay.start()
    try:
        await until(lambda: _depth_is(memory, 0))
    finally:
        await relay.stop()
    assert set(provider.sent) == set(ids)
