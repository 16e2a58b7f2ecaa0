"""The provider pool behind the relay: routing, circuit breakers, rate and failover.

For each claimed message the router gives an ordered plan of providers. The
first one whose breaker lets the call through and that has room (in-flight
cap, shared token bucket) gets it; a retryable error moves on to the next,
a permanent one ends the attempt. When no provider could even be asked
(every circuit open, every bucket empty) the message is put back in the
outbox until the earliest of them can take it, without spending an attempt:
an outage never spins messages through their retries.

Lanes (domain/lanes.py): sends waiting for a provider's tokens are served
by lane through its ``PriorityGate``, and ``capacity(Lane.MARKETING)`` keeps
``lane_headroom`` of each provider's room free of marketing, so a message of
a higher lane claimed a moment later still finds a slot and the relay does
not fill memory with marketing that would only wait for tokens. A message
whose validity ended while it waited is never handed over: the expiry is
checked again after the token wait, right before the send.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from smsgw import metrics
from smsgw.domain.breaker import BreakerState, CircuitBreaker
from smsgw.domain.errors import Unavailable
from smsgw.domain.lanes import Lane, lane_of
from smsgw.domain.retry import RetryPolicy
from smsgw.domain.routing import NoRoute, Router
from smsgw.ports import OutboundMessage, ProviderError, RateLimiter, SendPort, SendResult
from smsgw.services.deadlines import Deadlines
from smsgw.services.gate import PriorityGate
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
    # A send waits this long for a token before it is put back. The relay claims only
    # about 100 ms of tokens per process (SharedTokenBucket.room), so a wait this long
    # means the bucket is shared by many relays or starved; a shorter bound put half a
    # backlog back through the outbox when two relays shared one bucket.
    max_rate_wait_seconds: float = 1.0
    send_timeout_seconds: float = 30.0
    unavailable_wait_seconds: float = 1.0  # retry soon when the shared bucket is away
    marketing_min_share: float = 0.10  # of the tokens, while marketing waits behind others
    lane_headroom: float = 0.10  # of the room, kept free of marketing for higher lanes
    in_flight: int = 0
    _gate: PriorityGate | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.call_seconds = metrics.PROVIDER_LATENCY.labels(self.port.name)

    @property
    def gate(self) -> PriorityGate | None:
        """The bucket's tokens, served by lane (none without a bucket)."""
        if self.bucket is None:
            return None
        if self._gate is None or self._gate.bucket is not self.bucket:
            self._gate = PriorityGate(self.bucket, self.marketing_min_share)
        return self._gate

    @property
    def name(self) -> str:
        return self.port.name

    def can_take(self) -> bool:
        """Whether a claimed message may try this provider now: a slot free, the breaker
        letting calls through, the bucket reachable. Tokens it may wait for (the gate);
        ``free`` counts them only to size the claims."""
        now = time.monotonic()
        return (self.in_flight < self.max_in_flight and self.breaker.room(now) > 0
                and (self.bucket is None or self.bucket.room(now) > 0))

    def free(self, lane: Lane = Lane.OTP) -> int:
        """How many more sends of ``lane`` this provider can take soon: in-flight room,
        breaker probes, and the tokens the bucket can likely give before long less the
        sends already waiting for them; marketing leaves the headroom to higher lanes."""
        now = time.monotonic()
        room = min(max(0, self.max_in_flight - self.in_flight), self.breaker.room(now))
        size = self.max_in_flight
        if self.gate is not None:
            tokens = self.gate.bucket.room(now)
            room = min(room, tokens - self.gate.waiting)
            size = min(size, tokens)
        if lane is Lane.MARKETING:
            room -= math.ceil(size * self.lane_headroom)
        return max(0, room)


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


@dataclass(frozen=True, slots=True)
class Expired:
    """The message's validity ended before a provider could be handed it."""

    provider: str
    route: str


Dispatched = Sent | Failed | Deferred | Expired


class Dispatcher:
    def __init__(self, router: Router, slots: Mapping[str, ProviderSlot],
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        missing = router.provider_names - set(slots)
        if missing:
            raise ValueError(f"routes name unknown providers: {', '.join(sorted(missing))}")
        self._router = router
        self._slots = dict(slots)
        self._clock = clock
        self._deadlines = Deadlines()  # one timer for every send in flight
        for slot in self._slots.values():
            BreakerGauge(slot.name)(slot.breaker.state)

    @property
    def slots(self) -> Mapping[str, ProviderSlot]:
        return self._slots

    def capacity(self, lane: Lane = Lane.OTP) -> int:
        """How many more messages of ``lane`` the pool could take soon: the relay claims
        no more."""
        return sum(slot.free(lane) for slot in self._slots.values())

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
            if isinstance(outcome, Sent | Expired) or outcome.retry is None:
                return outcome
            if failure is not None:
                metrics.DISPATCH.labels(failure.provider, "failover").inc()
            failure = outcome
        if failure is not None:
            return failure
        return Deferred(plan.route, min(waits) if waits else 1.0)

    async def _try(self, slot: ProviderSlot, route: str, message: OutboundMessage,
                   waits: list[float]) -> Sent | Failed | Expired | None:
        if not slot.can_take():  # circuit open (or probes all out), the in-flight cap reached
            opened = slot.breaker.state is BreakerState.OPEN
            waits.append(max(0.05, slot.breaker.retry_at() - time.monotonic()) if opened
                         else 0.05)
            return None
        slot.in_flight += 1
        try:
            if slot.gate is not None:
                wait = await self._take_token(slot, lane_of(message.traffic_class))
                if wait is not None:
                    waits.append(wait)
                    return None
            if message.expire_at is not None and self._clock() >= message.expire_at:
                return Expired(slot.name, route)
            if not slot.breaker.allow(time.monotonic()):
                waits.append(max(0.05, slot.breaker.retry_at() - time.monotonic()))
                return None
            return await self._send(slot, route, message)
        finally:
            slot.in_flight -= 1

    @staticmethod
    async def _take_token(slot: ProviderSlot, lane: Lane) -> float | None:
        """None when a token was taken; else how long to wait. A bucket that cannot be
        reached is no capacity now: the message waits in the outbox, its attempt refunded,
        and no carrier gets more than its share because Redis is away."""
        assert slot.gate is not None
        try:
            return await slot.gate.acquire(lane, slot.max_rate_wait_seconds)
        except Unavailable as exc:
            _warnings.warning(f"bucket:{slot.name}", "rate limiter unavailable; deferring",
                              extra={"provider": slot.name, "error": exc.message})
            return slot.unavailable_wait_seconds

    async def _send(self, slot: ProviderSlot, route: str, message: OutboundMessage
                    ) -> Sent | Failed:
        started = time.monotonic()
        try:
            result = await self._deadlines.run(slot.port.send(message),
                                               slot.send_timeout_seconds)
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
