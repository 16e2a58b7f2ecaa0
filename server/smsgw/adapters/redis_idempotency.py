"""Redis in front of the idempotency constraint: SET NX claims, pipelined per batch.

A replayed key is answered from here without an insert attempt, and a key
reused for a different payload is refused without touching Postgres. Any
Redis failure degrades to "no answer", and the database's unique constraint
decides alone: an outage costs speed, never a double send.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class RedisIdempotencyCache:
    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds

    @staticmethod
    def _key(tenant: uuid.UUID, key: str) -> str:
        return f"smsgw:idem:{tenant}:{key}"

    async def claim(self, tenant: uuid.UUID, items: Sequence[tuple[str, str]]) -> list[str | None]:
        """None where the claim is new; the stored value where the key was taken."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items:
                    # SET NX GET needs Redis 7; embedded Redis is 6.2, so: SET NX, then GET.
                    pipe.set(self._key(tenant, key), value, nx=True, ex=self._ttl)
                    pipe.get(self._key(tenant, key))
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("idempotency cache unavailable", extra={"error": str(exc)})
            return [None] * len(items)
        return [None if stored else _text(value)
                for stored, value in zip(results[0::2], results[1::2], strict=True)]

    async def release(self, tenant: uuid.UUID, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            await self._redis.delete(*(self._key(tenant, k) for k in keys))
        except (RedisError, OSError) as exc:
            log.warning("idempotency cache release failed", extra={"error": str(exc)})

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
