"""IdempotencyCache and RateLimiter: Redis and the in-memory fakes behave alike."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from smsgw.adapters import redis_client
from smsgw.adapters.memory import MemoryIdempotencyCache, MemoryRateLimiter
from smsgw.adapters.redis_idempotency import RedisIdempotencyCache
from smsgw.adapters.redis_rate import SharedTokenBucket
from smsgw.ports import IdempotencyCache, RateLimiter


@pytest_asyncio.fixture(params=["redis", "memory"])
async def redis_ports(request: pytest.FixtureRequest, redis_url: str
                      ) -> AsyncIterator[tuple[IdempotencyCache, RateLimiter]]:
    if request.param == "memory":
        yield MemoryIdempotencyCache(), MemoryRateLimiter(rate=1, burst=5)
        return
    client = redis_client.connect(redis_url)
    try:
        yield (RedisIdempotencyCache(client, 60),
               SharedTokenBucket(client, f"contract-{uuid.uuid4().hex}", rate=1, burst=5))
    finally:
        await client.aclose()


async def test_a_claim_is_new_once_then_answers_the_stored_value(
        redis_ports: tuple[IdempotencyCache, RateLimiter]) -> None:
    cache, _ = redis_ports
    tenant = uuid.uuid4()
    assert await cache.claim(tenant, [("a", "fp:1"), ("b", "fp:2")]) == [None, None]
    assert await cache.claim(tenant, [("a", "fp:9"), ("c", "fp:3")]) == ["fp:1", None]
    assert await cache.claim(uuid.uuid4(), [("a", "fp:9")]) == [None]  # per tenant
    await cache.release(tenant, ["a"])
    assert await cache.claim(tenant, [("a", "fp:9")]) == [None]


async def test_a_bucket_grants_its_burst_then_says_how_long_to_wait(
        redis_ports: tuple[IdempotencyCache, RateLimiter]) -> None:
    _, bucket = redis_ports
    assert [await bucket.acquire(0) for _ in range(5)] == [None] * 5
    wait = await bucket.acquire(0)
    assert wait is not None and 0 < wait <= 1.0
    assert bucket.room(0.0) > 0
