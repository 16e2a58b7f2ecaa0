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

from smsgw.adapters.redis_client import REDIS_ERRORS
from smsgw.throttled_log import ThrottledLog

log = logging.getLogger(__name__)
_warnings = ThrottledLog(log, interval_seconds=10.0)

# One round trip and one command for a whole batch (EVALSHA, cached by the
# client). SET NX GET would do per key, but needs Redis 7 and embedded is 6.2.
# Returns, per key, false where the key was free and is now ours, else the
# value already stored.
_CLAIM = """
local ttl = ARGV[1]
local out = {}
for i, key in ipairs(KEYS) do
    if redis.call('SET', key, ARGV[i + 1], 'NX', 'EX', ttl) then
        out[i] = false
    else
        out[i] = redis.call('GET', key) or false
    end
end
return out
"""


class RedisIdempotencyCache:
    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._claim_script = client.register_script(_CLAIM)

    @staticmethod
    def _key(tenant: uuid.UUID, key: str) -> str:
        return f"smsgw:idem:{tenant}:{key}"

    async def claim(self, tenant: uuid.UUID, items: Sequence[tuple[str, str]]) -> list[str | None]:
        """None where the claim is new; the stored value where the key was taken."""
        keys = [self._key(tenant, key) for key, _ in items]
        try:
            results = await self._claim_script(keys=keys,
                                               args=[self._ttl, *(v for _, v in items)])
        except REDIS_ERRORS as exc:
            _warnings.warning("claim", "idempotency cache unavailable; the database decides",
                              extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            return [None] * len(items)
        return [_text(value) for value in results]

    async def release(self, tenant: uuid.UUID, keys: Sequence[str]) -> None:
        if not keys:
            return
        try:
            await self._redis.delete(*(self._key(tenant, k) for k in keys))
        except REDIS_ERRORS as exc:
            _warnings.warning("release", "idempotency cache release failed",
                              extra={"error": f"{type(exc).__name__}: {exc}"[:300]})

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except REDIS_ERRORS:
            return False


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
