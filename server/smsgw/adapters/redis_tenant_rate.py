"""Each tenant's submission rate, shared by every replica: GCRA in one Lua script.

The generic cell rate algorithm keeps one number per tenant, the theoretical
arrival time (TAT) of its next message: a message fits while the TAT is at
most ``burst`` intervals ahead of now. Checking and moving it is one atomic
script on Redis's clock (``TIME``), so replicas whose clocks disagree share
one rate, and a changed rate or burst applies from the next call. A tenant
that is idle costs nothing: the key expires once its TAT is past.
Redis being away is ``Unavailable`` here; the caller decides what that means
(the admission service fails open).
"""

from __future__ import annotations

import uuid
from typing import Any

import redis.asyncio as aioredis

from smsgw.adapters.redis_client import REDIS_ERRORS
from smsgw.domain.errors import Unavailable

# KEYS[1] the tenant's TAT (ms, fractional); ARGV rate/s, burst, wanted.
# Returns {granted, wait_ms as a string (a Lua number would be truncated)}.
_GCRA = """
local rate, burst, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local interval = 1000 / rate
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local fits = math.floor((now + burst * interval - tat) / interval + 1e-9)
local granted = math.max(0, math.min(wanted, fits))
tat = tat + granted * interval
if granted > 0 then
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
local wait = 0
if granted < wanted then wait = math.max(0, tat + interval - burst * interval - now) end
return {granted, string.format('%.3f', wait)}
"""


class RedisTenantRateLimiter:
    def __init__(self, client: aioredis.Redis, prefix: str = "smsgw:tenant-rate:") -> None:
        self._script: Any = client.register_script(_GCRA)
        self._prefix = prefix

    async def take(self, tenant: uuid.UUID, rate: float, burst: int,
                   count: int) -> tuple[int, float]:
        if count <= 0:
            return 0, 0.0
        try:
            granted, wait_ms = await self._script(
                keys=[f"{self._prefix}{tenant}"], args=[rate, max(1, burst), count])
        except REDIS_ERRORS as exc:
            raise Unavailable(f"tenant rate limiter unavailable: {type(exc).__name__}: "
                              f"{exc}"[:300]) from exc
        return int(granted), float(wait_ms) / 1000
