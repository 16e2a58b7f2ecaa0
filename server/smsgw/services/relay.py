"""The outbox relay: leases due messages in batches and hands them to the provider.

Claims happen in one statement (SKIP LOCKED, so any number of relays share
a database), sends run concurrently up to an in-flight cap, and outcomes are
written back in batches by a separate task, so neither the claim nor the
write-back waits on the slowest send. A wake-up from LISTEN/NOTIFY or the
poll interval, whichever comes first, starts the next claim.

A claim is shared by lane and tenant (services/claims.py, domain/fairness.py)
and sized by what the providers can take soon, marketing leaving them some
headroom; when that held work back, the next send that finishes starts the
next claim, so the backlog waits in the outbox, where a higher lane that
arrives meanwhile overtakes it, and not in memory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from smsgw import metrics
from smsgw.domain.errors import Unavailable
from smsgw.domain.lanes import Lane
from smsgw.domain.phone import mask
from smsgw.domain.records import OutboundMessage, Outcome
from smsgw.domain.status import MessageStatus
from smsgw.ports import Outbox
from smsgw.services.claims import claim_due
from smsgw.services.dispatch import Deferred, Dispatcher, Expired, Failed, Sent
from smsgw.supervision import HealthBoard, Supervised, wait_for_event

log = logging.getLogger(__name__)

# When a message may leave, if not now: None, or the instant it may (quiet hours).
Hold = Callable[[OutboundMessage], dt.datetime | None]


@dataclass(frozen=True, slots=True)
class RelayConfig:
    batch_size: int = 500
    max_in_flight: int = 2000
    poll_seconds: float = 1.0
    lease_seconds: float = 60.0
    max_age_seconds: float = 86400.0
    stop_timeout_seconds: float = 10.0
    # After a wake-up, wait this long for more work to gather: one claim or
    # write-back of fifty rows costs little more than one of five.
    coalesce_seconds: float = 0.01
    # While marketing has a backlog, its share of each claim (domain/fairness.py).
    marketing_min_share: float = 0.10


class Relay:
    def __init__(
        self, outbox: Outbox, dispatcher: Dispatcher, config: RelayConfig,
        owner: str | None = None, board: HealthBoard | None = None,
        hold: Hold | None = None, rng: random.Random | None = None,
    ) -> None:
        self._outbox = outbox
        self._hold = hold
        self._dispatcher = dispatcher
        self._config = config
        self.owner = owner or f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._rng = rng or random.Random()  # retry jitter
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._held_back = False  # the last claim left due work for lack of room
        self._in_flight: set[asyncio.Task[None]] = set()
        self._outcomes: list[tuple[Outcome, float]] = []  # with the lease's end
        self._outcomes_ready = asyncio.Event()
        board = board or HealthBoard()
        self._claimer = Supervised("relay-claim", self._claim_step, board,
                                   stop_timeout_seconds=config.stop_timeout_seconds)
        self._recorder = Supervised("relay-record", self._record_step, board,
                                    stop_timeout_seconds=config.stop_timeout_seconds)
        self._counters: dict[tuple[str, str], Counter] = {}
        self._histograms: dict[str, Histogram] = {}

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self._claimer.start()
        await self._recorder.start()

    async def stop(self) -> None:
        """Stops claiming, lets in-flight sends finish (up to a timeout), writes outcomes.

        Safe to call twice. Outcomes that still cannot be written (the
        database is away through the whole timeout) are logged by count:
        their messages fall due again when the lease ends.
        """
        if not self._claimer.running:
            return
        self._wake.set()
        await self._claimer.stop()
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=self._config.stop_timeout_seconds)
        self._outcomes_ready.set()
        await self._recorder.stop()
        await self._record_before(time.monotonic() + self._config.stop_timeout_seconds)

    async def _claim_step(self) -> None:
        room = min(self._config.max_in_flight - len(self._in_flight),
                   self._dispatcher.capacity())
        if room <= 0 and not self._in_flight:
            await self._sleep_until_woken()  # every provider is closed to traffic
            return
        if room <= 0:
            self._room.clear()
            await wait_for_event(self._room, self._claimer.stopping)
            # Let a few more sends finish: one claim of fifty rows costs about
            # what a claim of one does, and a provider with a small window
            # frees room one message at a time.
            await asyncio.sleep(self._config.coalesce_seconds)
            return
        # A little short of the lease, so a late write-back never races a takeover.
        lease_until = time.monotonic() + self._config.lease_seconds * 0.9
        limit = min(room, self._config.batch_size)
        self._wake.clear()
        claim = await claim_due(
            self._outbox, self.owner, limit, self._config.lease_seconds,
            marketing_room=self._dispatcher.capacity(Lane.MARKETING),
            marketing_min_share=self._config.marketing_min_share)
        self._claimer.healthy()
        for message in claim.messages:
            self._dispatch(message, lease_until)
        self._held_back = claim.held_back
        if len(claim.messages) < limit:
            # Work held back for lack of room: a finished send wakes the claim. Otherwise
            # sleep until the next row falls due (a scheduled send, a retry), at most.
            await self._sleep_until_woken(
                None if claim.held_back else await self._until_next_due())

    async def _until_next_due(self) -> float:
        """The poll interval, or less when a row (a scheduled send, a retry) falls due
        sooner: such a row is due with no NOTIFY to wake anyone."""
        poll = self._config.poll_seconds
        until = await self._outbox.next_due()
        return poll if until is None else max(0.0, min(poll, until.total_seconds()))

    async def _sleep_until_woken(self, at_most: float | None = None) -> None:
        await wait_for_event(self._wake, self._claimer.stopping,
                             at_most=self._config.poll_seconds if at_most is None else at_most)
        await asyncio.sleep(self._config.coalesce_seconds)

    def _dispatch(self, message: OutboundMessage, lease_until: float) -> None:
        task = asyncio.create_task(self._send(message, lease_until))
        self._in_flight.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._room.set()
        if self._held_back:  # due work waits for exactly this room
            self._wake.set()

    async def _send(self, message: OutboundMessage, lease_until: float) -> None:
        try:
            outcome = await self._attempt(message)
        except Exception:  # a bug: the message must still get an outcome, not wait for its lease
            log.exception("relay attempt failed", extra={
                "message_id": str(message.id), "tenant_id": str(message.tenant_id)})
            outcome = Outcome(message.id, MessageStatus.QUEUED, error_code="RELAY_ERROR",
                              error_description="internal error; retried", retry_in_ms=5000)
        self._outcomes.append((outcome, lease_until))
        self._outcomes_ready.set()

    def _deadline(self, message: OutboundMessage) -> dt.datetime:
        """The end of a message's validity: its own, or (stored before validity existed)
        the maximum age."""
        return message.expire_at or (
            message.created_at + dt.timedelta(seconds=self._config.max_age_seconds))

    async def _attempt(self, message: OutboundMessage) -> Outcome:
        now = dt.datetime.now(dt.UTC)
        age = (now - message.created_at).total_seconds()
        if now >= self._deadline(message):
            return self._expired(message, "")
        if self._hold is not None and (opens := self._hold(message)) is not None:
            return self._held(message, opens, now)
        started = time.monotonic()
        done = await self._dispatcher.dispatch(message, message.traffic_class)
        if isinstance(done, Sent):
            self._count(done.provider, "sent")
            elapsed = time.monotonic() - started
            self._latency(done.provider, age + elapsed)
            return Outcome(message.id, MessageStatus.SENT, provider=done.provider,
                           provider_message_id=done.result.provider_message_id,
                           route=done.route, part_ids=done.result.part_ids,
                           # No part ids: one submit (or the SMSC split it): the count
                           # made at accept stands.
                           segments=len(done.result.part_ids) or None)
        if isinstance(done, Expired):  # its validity ended while it waited for a token
            return self._expired(message, done.provider)
        if isinstance(done, Deferred):
            self._count("", "deferred")
            return Outcome(message.id, MessageStatus.QUEUED, route=done.route, refund=True,
                           retry_in_ms=max(10, int(done.wait_seconds * 1000)))
        return self._failed(message, done)

    def _failed(self, message: OutboundMessage, failed: Failed) -> Outcome:
        error = failed.error
        delay = failed.retry.delay_ms(message.attempt, self._rng) if failed.retry else None
        retry_at = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=delay or 0)
        if delay is not None and retry_at >= self._deadline(message):
            return self._expired(message, failed.provider)
        outcome = "retry" if delay is not None else "failed"
        dead = failed.retry is not None and delay is None
        self._count(failed.provider, outcome)
        if dead:
            metrics.DEAD_LETTERS.labels(failed.provider).inc()
        log.info("send failed", extra={
            "message_id": str(message.id), "tenant_id": str(message.tenant_id),
            "to_masked": mask(message.to), "attempt": message.attempt, "error_code": error.code,
            "provider": failed.provider, "outcome": "dead_letter" if dead else outcome})
        status = MessageStatus.QUEUED if delay is not None else MessageStatus.FAILED
        return Outcome(message.id, status, provider=failed.provider, error_code=error.code,
                       error_description=error.description, retry_in_ms=delay,
                       route=failed.route, dead_letter=dead)

    def _held(self, message: OutboundMessage, opens: dt.datetime, now: dt.datetime) -> Outcome:
        """Back to the outbox until its quiet hours end, the attempt given back; expired
        instead when they end after its validity does."""
        if opens >= self._deadline(message):
            self._count("", "expired")
            return Outcome(message.id, MessageStatus.EXPIRED, error_code="VALIDITY_EXPIRED",
                           error_description="the recipient's quiet hours end at "
                                             f"{opens.isoformat()}, after its validity")
        self._count("", "held")
        return Outcome(message.id, MessageStatus.QUEUED, refund=True,
                       error_code="QUIET_HOURS",
                       error_description=f"held for the recipient's quiet hours until "
                                         f"{opens.isoformat()}",
                       retry_in_ms=max(10, math.ceil((opens - now).total_seconds() * 1000)))

    def _expired(self, message: OutboundMessage, provider: str) -> Outcome:
        self._count(provider, "expired")
        if message.expire_at is None:
            return Outcome(message.id, MessageStatus.EXPIRED, provider=provider,
                           error_code="EXPIRED",
                           error_description=f"not sent within {self._config.max_age_seconds:g}s")
        return Outcome(message.id, MessageStatus.EXPIRED, provider=provider,
                       error_code="VALIDITY_EXPIRED",
                       error_description="not handed to a provider before its validity ended "
                                         f"at {message.expire_at.isoformat()}")

    def _count(self, provider: str, outcome: str) -> None:
        key = (provider or "none", outcome)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = metrics.DISPATCH.labels(*key)
        counter.inc()

    def _latency(self, provider: str, seconds: float) -> None:
        histogram = self._histograms.get(provider)
        if histogram is None:
            histogram = self._histograms[provider] = metrics.DELIVERY_LATENCY.labels(provider)
        histogram.observe(seconds)

    async def _record_step(self) -> None:
        await wait_for_event(self._outcomes_ready, self._recorder.stopping)
        await asyncio.sleep(self._config.coalesce_seconds)
        self._outcomes_ready.clear()
        await self._record_pending()

    async def _record_pending(self) -> None:
        """Writes outcomes back; none is dropped while its lease may still hold.

        An outcome that matched no leased row is kept and tried again until a
        little before its lease ends: dropping it would mean sending the
        message a second time once the lease ran out. Past the lease the row
        belongs to whichever relay takes it over. When the database is away
        the batch is put back and the error goes to the supervisor, which
        retries with backoff.
        """
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                applied = await self._outbox.record(self.owner, [o for o, _ in batch])
            except BaseException:
                self._outcomes[:0] = batch
                self._outcomes_ready.set()
                raise
            self._keep_unapplied(batch, applied)
            if len(applied) < len(batch):
                await asyncio.sleep(0.05)

    async def _record_before(self, deadline: float) -> None:
        """The final write-back at stop: retried while the database is away, up to a deadline."""
        while self._outcomes:
            try:
                async with asyncio.timeout_at(_loop_time(deadline)):
                    await self._record_pending()
            except (Unavailable, TimeoutError) as exc:
                if time.monotonic() >= deadline:
                    log.error("outcomes not recorded at stop; their messages fall due again "
                              "when the lease ends", extra={"outcomes": len(self._outcomes),
                                                            "error": str(exc)})
                    return
                await asyncio.sleep(0.2)

    def _keep_unapplied(self, batch: list[tuple[Outcome, float]],
                        applied: set[uuid.UUID]) -> None:
        now = time.monotonic()
        for outcome, give_up_at in batch:
            if outcome.id in applied:
                continue
            if now < give_up_at:
                self._outcomes.append((outcome, give_up_at))
            else:
                log.warning("outcome could not be recorded before its lease ended",
                            extra={"message_id": str(outcome.id)})


def _loop_time(monotonic_deadline: float) -> float:
    """A time.monotonic() deadline on the event loop's clock."""
    return asyncio.get_running_loop().time() + monotonic_deadline - time.monotonic()
