"""One way to open Redis: bounded waits, and almost no retrying inside the client.

redis-py retries a failed command ten times with backoff by default, so
with Redis gone every call would stall for seconds before failing. Here a
call fails fast and the caller decides: the idempotency cache answers "no
answer" and the database decides, the token bucket answers "no capacity
now", readiness says which store is away.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import RedisError

# Every error a Redis call can raise when the server is away or the link broke.
REDIS_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


def connect(url: str, *, timeout_seconds: float = 2.0) -> aioredis.Redis:
    return aioredis.from_url(
        url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds,
        retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.05), retries=1),
        health_check_interval=10)
