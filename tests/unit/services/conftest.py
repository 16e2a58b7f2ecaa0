"""Services on the in-memory stores: the policies, fast, with no Postgres or Redis.

The fakes are held to the Postgres adapters by tests/contract; here they let
the submitter, relay, watch and webhook logic be tested on their own.
"""

from __future__ import annotations

import asyncio
import collections
import uuid

import pytest

from smsgw.adapters.memory import MemoryStores
from smsgw.domain.breaker import BreakerConfig, CircuitBreaker
from smsgw.domain.retry import RetryPolicy
from smsgw.domain.routing import Router, RouteRule, WeightedProvider
from smsgw.domain.validation import Limits, SendRequest, validate
from smsgw.ports import OutboundMessage, ProviderError, ReceiptSink, SendResult
from smsgw.services.dispatch import Dispatcher, ProviderSlot
from smsgw.services.relay import Relay


class ScriptedProvider:
    """A carrier whose answer per attempt is scripted; it counts every hand-over."""

    name = "scripted"

    def __init__(self, failures: dict[int, ProviderError] | None = None) -> None:
        self.sent: collections.Counter[uuid.UUID] = collections.Counter()
        self.failures = failures or {}

    async def start(self, on_receipt: ReceiptSink) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: OutboundMessage) -> SendResult:
        await asyncio.sleep(0)
        self.sent[message.id] += 1
        if message.attempt in self.failures:
            raise self.failures[message.attempt]
        return SendResult(provider_message_id=f"p-{message.id.hex}-{message.attempt}")


def pool(provider: ScriptedProvider, retry: RetryPolicy | None = None) -> Dispatcher:
    patient = BreakerConfig(consecutive_failures=10**6, min_calls=10**6)
    slot = ProviderSlot(provider, CircuitBreaker(patient),
                        retry or RetryPolicy(base_seconds=0.001, cap_seconds=0.002))
    return Dispatcher(Router([RouteRule("all", (WeightedProvider(provider.name),))]),
                      {provider.name: slot})


def submission(key: str, body: str = "hello"):  # type: ignore[no-untyped-def]
    return validate(SendRequest(to="+16502530000", body=body, idempotency_key=key), Limits())


@pytest.fixture
def memory() -> MemoryStores:
    return MemoryStores()


@pytest.fixture
async def tenant(memory: MemoryStores) -> uuid.UUID:
    return (await memory.tenants.create("acme"))[0].id


async def relay_until_empty(memory: MemoryStores, relay: Relay) -> None:
    """Runs the relay until the outbox is empty (at most 10 s), then stops it."""
    await relay.start()
    try:
        async with asyncio.timeout(10):
            while await memory.outbox.depth():
                await asyncio.sleep(0.005)
    finally:
        await relay.stop()
