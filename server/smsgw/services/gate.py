"""A provider's token bucket, served to waiting sends by lane.

Sends that found the provider's shared bucket empty used to sleep side by
side and take tokens in whatever order they woke, so an OTP claimed behind
a batch of marketing waited for all of it. Here one waiter at a time holds
the *turn* and takes a token (sleeping for it if need be); when it has one,
or gives up, the turn passes to the waiter ``LaneTurns`` picks: the highest
lane, with marketing's guaranteed share. An OTP therefore waits for at most
the token the current holder is waiting for.
"""

from __future__ import annotations

import asyncio
import collections
import time

from smsgw.domain.fairness import LaneTurns
from smsgw.domain.lanes import Lane
from smsgw.ports import RateLimiter


class PriorityGate:
    def __init__(self, bucket: RateLimiter, marketing_min_share: float = 0.10) -> None:
        self.bucket = bucket
        self._turns = LaneTurns(marketing_min_share)
        self._queues: dict[Lane, collections.deque[asyncio.Future[None]]] = {
            lane: collections.deque() for lane in Lane}
        self._held = False
        self.waiting = 0  # sends waiting for a token, the holder included

    async def acquire(self, lane: Lane, max_wait_seconds: float) -> float | None:
        """Takes one token for a send of ``lane``: None when taken, else how long until
        one is likely (the send should be put back). Raises what the bucket raises."""
        deadline = time.monotonic() + max_wait_seconds
        self.waiting += 1
        try:
            if not await self._take_turn(lane, deadline):
                return max(0.01, max_wait_seconds)
            try:
                return await self.bucket.acquire(max(0.0, deadline - time.monotonic()))
            finally:
                self._pass_turn()
        finally:
            self.waiting -= 1

    async def _take_turn(self, lane: Lane, deadline: float) -> bool:
        if not self._held:
            self._held = True
            return True
        turn = asyncio.get_running_loop().create_future()
        self._queues[lane].append(turn)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await turn
        except TimeoutError:
            if turn.done() and not turn.cancelled():  # handed the turn as time ran out
                self._pass_turn()
            return False
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._pass_turn()
            raise
        return True

    def _pass_turn(self) -> None:
        while True:
            lane = self._turns.next(lane for lane, q in self._queues.items() if q)
            if lane is None:
                self._held = False
                return
            turn = self._queues[lane].popleft()
            if not turn.done():  # a waiter that timed out left a cancelled future
                turn.set_result(None)
                return
