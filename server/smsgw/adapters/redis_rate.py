"""A token bucket per provider, shared by every relay process through Redis.

Each process takes tokens in small batches (one round trip buys a few
milliseconds' worth), so the limit holds across processes while the hot
path rarely waits on Redis. Redis's own clock refills the bucket, so
processes whose clocks disagree still share one rate. Redis being away is
``Unavailable`` here; the dispatcher treats it as "no capacity now".
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import redis.asyncio as aioredis

from smsgw.adapters.redis_client import REDIS_ERRORS
from smsgw.domain.errors import Unavailable

# KEYS[1] bucket; ARGV rate/s, burst, wanted. Returns {granted, wait_ms}.
_TAKE = """
local rate, burst, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(b[1]) or burst, tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local granted = math.min(wanted, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
local wait = 0
if granted == 0 then wait = math.ceil((1 - tokens) * 1000 / rate) end
return {granted, wait}
"""


class SharedTokenBucket:
    def __init__(self, client: aioredis.Redis, provider: str, rate: float, burst: int,
                 horizon_seconds: float = 0.1) -> None:
        self._script: Any = client.register_script(_TAKE)
        self._key = f"smsgw:rate:{provider}"
        self._rate = rate
        self._burst = max(1, burst)
        self._batch = max(1, min(self._burst, int(rate / 50)))  # ~20 ms of sending
        self._local = 0
        # What "soon" means for room(): the relay claims no more than this many
        # seconds of tokens, so messages wait in the outbox (where a higher lane
        # can overtake them at the claim), not in memory.
        self._soon = max(1, math.ceil(rate * horizon_seconds))
        self._lock = asyncio.Lock()
        self._down = False  # the last round trip failed
        self._probe_at = 0.0  # while down, when one call may try Redis again

    def room(self, now: float) -> int:
        """How many sends the bucket can likely serve soon: the tokens held here plus
        the horizon's worth of the rate (the bucket is shared, so this is an upper
        bound); none for a moment after Redis failed, then one probe, so an outage
        does not churn the whole outbox through deferrals."""
        if not self._down:
            return self._local + self._soon
        return 0 if now < self._probe_at else 1

    async def acquire(self, max_wait_seconds: float) -> float | None:
        """Takes one token; None when taken, else how long until one is likely.

        Waits (without holding anything) up to ``max_wait_seconds``; beyond
        that the caller should put the message back rather than wait in memory.
        Raises ``Unavailable`` when Redis cannot be reached.
        """
        deadline = time.monotonic() + max_wait_seconds
        while True:
            if self._local > 0:
                self._local -= 1
                return None
            async with self._lock:
                if self._local > 0:
                    continue
                granted, wait_ms = await self._take()
                self._local += int(granted)
                if self._local > 0:
                    continue
            wait = int(wait_ms) / 1000
            if time.monotonic() + wait > deadline:
                return wait
            await asyncio.sleep(wait)

    async def _take(self) -> tuple[int, int]:
        try:
            granted, wait_ms = await self._script(
                keys=[self._key], args=[self._rate, self._burst, self._batch])
        except REDIS_ERRORS as exc:
            self._down, self._probe_at = True, time.monotonic() + 1.0
            raise Unavailable(f"rate limiter unavailable: {type(exc).__name__}: {exc}"[:300]) \
                from exc
        self._down = False
        return int(granted), int(wait_ms)
