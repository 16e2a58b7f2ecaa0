"""Watch streams and webhook delivery, on the in-memory stores."""

from __future__ import annotations

import asyncio
import json

import httpx
from standardwebhooks.webhooks import Webhook

from smsgw.adapters.memory import MemoryStores
from smsgw.domain.records import DeliveryReceipt, Outcome
from smsgw.domain.status import MessageStatus as S
from smsgw.services.claims import claim_due
from smsgw.services.submitter import Submitter
from smsgw.services.watch import End, Signal, WatchConfig, Watcher
from smsgw.services.webhooks import WebhookConfig, WebhookDispatcher, new_secret
from tests.unit.services.conftest import submission

CONFIG = WatchConfig(heartbeat_seconds=60, poll_seconds=0.01)


async def accept_and_deliver(memory: MemoryStores, tenant, key: str):  # type: ignore[no-untyped-def]
    [outcome] = await Submitter(memory.messages, None).submit_many(tenant, [submission(key)])
    message_id = outcome.message.id
    await claim_due(memory.outbox, "relay", 10, 30)
    await memory.outbox.record("relay", [Outcome(message_id, S.SENT, provider="p",
                                                 provider_message_id=f"p-{key}")])
    await memory.receipts.apply("p", [DeliveryReceipt("p", f"p-{key}", S.DELIVERED)])
    return message_id


async def test_a_watch_of_a_message_replays_its_history_and_ends_when_final(
        memory, tenant) -> None:
    message_id = await accept_and_deliver(memory, tenant, "k")
    watcher = Watcher(memory.events, Signal(), CONFIG, asyncio.Event())
    items = [item async for item in await watcher.watch(tenant, [message_id], None)]
    assert [i.status for i in items[:-1]] == [S.QUEUED, S.SENDING, S.SENT, S.DELIVERED]
    assert isinstance(items[-1], End) and items[-1].all_final


async def test_a_resumed_watch_sees_only_what_came_after_its_cursor(memory, tenant) -> None:
    message_id = await accept_and_deliver(memory, tenant, "k")
    watcher = Watcher(memory.events, Signal(), CONFIG, asyncio.Event())
    first = [i async for i in await watcher.watch(tenant, [message_id], None)]
    resumed = [i async for i in await watcher.watch(tenant, [message_id], first[1].cursor)]
    assert [i.status for i in resumed[:-1]] == [S.SENT, S.DELIVERED]


async def test_a_tenant_watch_follows_live_and_ends_in_band_at_shutdown(
        memory, tenant) -> None:
    signal, stopping = Signal(), asyncio.Event()
    watcher = Watcher(memory.events, signal, CONFIG, stopping)
    stream = await watcher.watch(tenant, [], None)
    seen = []

    async def follow() -> None:
        async for item in stream:
            seen.append(item)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.02)
    await accept_and_deliver(memory, tenant, "live")
    signal.fire()
    async with asyncio.timeout(5):
        while len(seen) < 4:
            await asyncio.sleep(0.005)
    stopping.set()
    await asyncio.wait_for(task, 5)
    assert [i.status for i in seen[:4]] == [S.QUEUED, S.SENDING, S.SENT, S.DELIVERED]
    assert isinstance(seen[-1], End) and not seen[-1].all_final


async def test_webhooks_deliver_signed_events_in_order_and_back_off_on_failure(
        memory, tenant) -> None:
    secret = new_secret()
    endpoint = await memory.webhooks.create(tenant, "https://hooks.example/sms",
                                            [S.SENT, S.DELIVERED], secret)
    received: list[dict[str, object]] = []
    failing = {"on": True}

    def answer(request: httpx.Request) -> httpx.Response:
        Webhook(secret).verify(request.content, dict(request.headers))  # raises if forged
        if failing["on"]:
            return httpx.Response(503)
        received.append(json.loads(request.content)["data"])
        return httpx.Response(204)

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    dispatcher = WebhookDispatcher(memory.webhooks, memory.events, Signal(), WebhookConfig(
        poll_seconds=0.01, retry_base_seconds=0.01, retry_cap_seconds=0.02), client)
    await accept_and_deliver(memory, tenant, "hooked")
    await dispatcher.start()
    try:
        async with asyncio.timeout(5):
            while not (await memory.webhooks.deliveries(tenant, endpoint.id, 10)):
                await asyncio.sleep(0.005)
            failing["on"] = False
            while len(received) < 2:
                await asyncio.sleep(0.005)
    finally:
        await dispatcher.stop()
    assert [r["status"] for r in received] == ["MESSAGE_STATUS_SENT", "MESSAGE_STATUS_DELIVERED"]
    attempts = await memory.webhooks.deliveries(tenant, endpoint.id, 10)
    assert attempts[-1].http_status == 503 and attempts[0].http_status == 204
