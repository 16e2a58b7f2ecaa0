"""One relay process for tests/integration/test_lanes.py.

Run as ``python lanes_worker.py DATABASE_URL REDIS_URL PROVIDER RATE SECONDS``.

It relays until the outbox is empty (or SECONDS pass) through a provider that
takes every message after a millisecond, behind the Redis token bucket named
PROVIDER at RATE messages a second, shared with every other worker, and
prints how many messages it handed over.
"""

from __future__ import annotations

import asyncio
import sys

from smsgw.adapters.postgres.database import Database
from smsgw.adapters.postgres.outbox import OutboxRepository
from smsgw.adapters.redis_client import connect
from smsgw.adapters.redis_rate import SharedTokenBucket
from smsgw.domain.breaker import BreakerConfig, CircuitBreaker
from smsgw.domain.retry import RetryPolicy
from smsgw.domain.routing import Router, RouteRule, WeightedProvider
from smsgw.ports import OutboundMessage, ReceiptSink, SendResult
from smsgw.services.dispatch import Dispatcher, ProviderSlot
from smsgw.services.relay import Relay, RelayConfig


class QuickProvider:
    def __init__(self, name: str) -> None:
        self.name = name
        self.handed = 0

    async def start(self, on_receipt: ReceiptSink) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: OutboundMessage) -> SendResult:
        self.handed += 1
        await asyncio.sleep(0.001)
        return SendResult(provider_message_id=f"q-{message.id.hex}")


async def main(database_url: str, redis_url: str, provider: str, rate: float,
               seconds: float) -> None:
    db = Database(database_url, pool_size=3)
    await db.open()
    redis = connect(redis_url)
    patient = BreakerConfig(consecutive_failures=10**6, min_calls=10**6)
    port = QuickProvider(provider)
    slot = ProviderSlot(port, CircuitBreaker(patient), RetryPolicy(),
                        bucket=SharedTokenBucket(redis, provider, rate, burst=int(rate // 10)))
    dispatcher = Dispatcher(Router([RouteRule("all", (WeightedProvider(provider),))]),
                            {provider: slot})
    relay = Relay(OutboxRepository(db), dispatcher,
                  RelayConfig(poll_seconds=0.02, coalesce_seconds=0.005))
    await relay.start()
    try:
        async with asyncio.timeout(seconds), db.connection() as conn:
            while await conn.fetchval("SELECT count(*) FROM outbox"):
                await asyncio.sleep(0.05)
    finally:
        await relay.stop()
        await redis.aclose()
        await db.close()
    print(port.handed)  # the test adds up what each process handed over


if __name__ == "__main__":
    url, redis_url, name, rate, seconds = sys.argv[1:6]
    asyncio.run(main(url, redis_url, name, float(rate), float(seconds)))
