"""TenantRateLimiter: the Redis GCRA and the in-memory fake grant alike."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from smsgw.adapters import redis_client
from smsgw.adapters.memory import MemoryTenantRateLimiter
from smsgw.adapters.redis_tenant_rate import RedisTenantRateLimiter
from smsgw.domain.errors import Unavailable
from smsgw.ports import TenantRateLimiter


@pytest_asyncio.fixture(params=["redis", "memory"])
async def limiter(request: pytest.FixtureRequest,
                  redis_url: str) -> AsyncIterator[TenantRateLimiter]:
    if request.param == "memory":
        yield MemoryTenantRateLimiter()
        return
    client = redis_client.connect(redis_url)
    try:  # a prefix of its own: tests share the Redis
        yield RedisTenantRateLimiter(client, prefix=f"contract-{uuid.uuid4().hex}:")
    finally:
        await client.aclose()


async def test_the_burst_is_granted_then_the_wait_for_the_next(
        limiter: TenantRateLimiter) -> None:
    tenant = uuid.uuid4()
    assert await limiter.take(tenant, 0.5, 3, 1) == (1, 0.0)
    assert await limiter.take(tenant, 0.5, 3, 2) == (2, 0.0)
    granted, wait = await limiter.take(tenant, 0.5, 3, 1)
    assert granted == 0 and 1.5 < wait <= 2.0  # one interval at 0.5/s, less time passed


async def test_a_request_bigger_than_the_room_gets_part(limiter: TenantRateLimiter) -> None:
    tenant = uuid.uuid4()
    granted, wait = await limiter.take(tenant, 1, 5, 8)
    assert granted == 5 and 0 < wait <= 1.0
    assert (await limiter.take(tenant, 1, 5, 8))[0] == 0


async def test_tenants_do_not_share_a_limit(limiter: TenantRateLimiter) -> None:
    one, other = uuid.uuid4(), uuid.uuid4()
    assert (await limiter.take(one, 0.1, 1, 1))[0] == 1
    assert (await limiter.take(one, 0.1, 1, 1))[0] == 0
    assert (await limiter.take(other, 0.1, 1, 1))[0] == 1


async def test_a_raised_limit_applies_from_the_next_call(limiter: TenantRateLimiter) -> None:
    tenant = uuid.uuid4()
    assert (await limiter.take(tenant, 0.1, 2, 5))[0] == 2
    assert (await limiter.take(tenant, 0.1, 10, 5))[0] == 5  # a bigger burst: room at once


async def test_redis_away_is_unavailable() -> None:
    client = redis_client.connect("redis://127.0.0.1:1", timeout_seconds=0.5)
    try:
        with pytest.raises(Unavailable):
            await RedisTenantRateLimiter(client).take(uuid.uuid4(), 1, 1, 1)
    finally:
        await client.aclose()
