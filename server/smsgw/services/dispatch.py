"""The provider pool behind the relay: routing, circuit breakers, rate and failover.

For each claimed message the router gives an ordered plan of providers. The
first one whose breaker lets the call through and that has room (in-flight
cap, shared token bucket) gets it; a retryable error moves on to the next,
a permanent one ends the attempt. When no provider could even be asked
(every circuit open, every bucket empty) the message is put back in the
outbox until the earliest of them can take it, without spending an attempt:
an outage never spins messages through their retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from smsgw import metrics
from smsgw.domain.breaker import BreakerState, CircuitBreaker
from smsgw.domain.errors import Unavailable
from smsgw.domain.retry import RetryPolicy
from smsgw.domain.routing import NoRoute, Router
from smsgw.ports import OutboundMessage, ProviderError, RateLimiter, SendPort, SendResult
from smsgw.throttled_log import ThrottledLog

log = logging.getLogger(__name__)
_warnings = ThrottledLog(log, interval_seconds=10.0)


@dataclass(eq=False)
class ProviderSlot:
    """One provider and everything that guards it."""

    port: SendPort
    breaker: CircuitBreaker
    retry: RetryPolicy
    max_in_flight: int = 100
    bucket: RateLimiter | None = None
    max_rate_wait_seconds: float = 0.25
    send_timeout_seconds: float = 30.0
    unavailable_wait_seconds: float = 1.0  # retry soon when the shared bucket is away
    in_flight: int = 0

    def __post_init__(self) -> None:
        self.call_seconds = metrics.PROVIDER_LATENCY.labels(self.port.name)

    @property
    def name(self) -> str:
        return self.port.name

    def free(self) -> int:
        now = time.monotonic()
        room = min(max(0, self.max_in_flight - self.in_flight), self.breaker.room(now))
        return room if self.bucket is None else min(room, self.bucket.room(now))


@dataclass(frozen=True, slots=True)
class Sent:
    provider: str
    route: str
    result: SendResult


@dataclass(frozen=True, slots=True)
class Failed:
    provider: str
    route: str
    error: ProviderError
    retry: RetryPolicy | None  # None: the error is permanent


@dataclass(frozen=True, slots=True)
class Deferred:
    route: str
    wait_seconds: float


Dispatched = Sent | Failed | Deferred


class Dispatcher:
    def __init__(self, router: Router, slots: Mapping[str, ProviderSlot]) -> None:
        missing = router.provider_names - set(slots)
        if missing:
            raise ValueError(f"routes name unknown providers: {', '.join(sorted(missing))}")
        self._router = router
        self._slots = dict(slots)
        for slot in self._slots.values():
            BreakerGauge(slot.name)(slot.breaker.state)

    @property
    def slots(self) -> Mapping[str, ProviderSlot]:
        return self._slots

    def capacity(self) -> int:
        """How many more messages the pool could take now: the relay claims no more."""
        return sum(slot.free() for slot in self._slots.values())

    async def dispatch(self, message: OutboundMessage, traffic_class: str) -> Dispatched:
        try:
            plan = self._router.plan(message.id, message.to, str(message.tenant_id),
                                     traffic_class)
        except NoRoute as exc:
            return Failed("", "", ProviderError("NO_ROUTE", str(exc), retryable=False), None)
        waits: list[float] = []
        failure: Failed | None = None
        for name in plan.providers:
            slot = self._slots[name]
            outcome = await self._try(slot, plan.route, message, waits)
            if outcome is None:
                continue
            if isinstance(outcome, Sent) or outcome.retry is None:
                return outcome
            if failure is not None:
                metrics.DISPATCH.labels(failure.provider, "failover").inc()
            failure = outcome
        if failure is not None:
            return failure
        return Deferred(plan.route, min(waits) if waits else 1.0)

    async def _try(self, slot: ProviderSlot, route: str, message: OutboundMessage,
                   waits: list[float]) -> Sent | Failed | None:
        if not slot.free():  # circuit open (or probes all out), or the in-flight cap reached
            opened = slot.breaker.state is BreakerState.OPEN
            waits.append(max(0.05, slot.breaker.retry_at() - time.monotonic()) if opened
                         else 0.05)
            return None
        slot.in_flight += 1
        try:
            if slot.bucket is not None:
                wait = await self._take_token(slot)
                if wait is not None:
                    waits.append(wait)
                    return None
            if not slot.breaker.allow(time.monotonic()):
                waits.append(max(0.05, slot.breaker.retry_at() - time.monotonic()))
                return None
            return await self._send(slot, route, message)
        finally:
            slot.in_flight -= 1

    @staticmethod
    async def _take_token(slot: ProviderSlot) -> float | None:
        """None when a token was taken; else how long to wait. A bucket that cannot be
        reached is no capacity now: the message waits in the outbox, its attempt refunded,
        and no carrier gets more than its share because Redis is away."""
        assert slot.bucket is not None
        try:
            return await slot.bucket.acquire(slot.max_rate_wait_seconds)
        except Unavailable as exc:
            _warnings.warning(f"bucket:{slot.name}", "rate limiter unavailable; deferring",
                              extra={"provider": slot.name, "error": exc.message})
            return slot.unavailable_wait_seconds

    async def _send(self, slot: ProviderSlot, route: str, message: OutboundMessage
                    ) -> Sent | Failed:
        started = time.monotonic()
        try:
            async with asyncio.timeout(slot.send_timeout_seconds):
                result = await slot.port.send(message)
        except ProviderError as exc:
            error = exc
        except TimeoutError:
            error = ProviderError("PROVIDER_TIMEOUT", "provider did not answer in time",
                                  retryable=True)
        except Exception as exc:  # an adapter bug must not strand the message
            log.exception("provider adapter failed",
                          extra={"provider": slot.name, "message_id": str(message.id)})
            error = ProviderError("PROVIDER_ERROR", type(exc).__name__, retryable=True)
        else:
            now = time.monotonic()
            slot.call_seconds.observe(now - started)
            slot.breaker.record(False, now)
            return Sent(slot.name, route, result)
        # A permanent refusal or a throttle says the carrier is up and answering.
        slot.breaker.record(error.retryable and not error.throttled, time.monotonic())
        return Failed(slot.name, route, error, slot.retry if error.retryable else None)


class BreakerGauge:
    """Keeps the ``circuit_breaker_state`` gauge in step with one breaker."""

    def __init__(self, provider: str) -> None:
        self._gauge = metrics.BREAKER_STATE.labels(provider)

    def __call__(self, state: BreakerState) -> None:
        self._gauge.set(int(state))
