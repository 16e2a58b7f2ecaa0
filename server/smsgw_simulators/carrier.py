"""The carrier simulator: the default provider, and the tests' controllable carrier.

It behaves like a carrier seen from our side of the wire: each send takes a
while, may fail (retryably or for good), and is acknowledged with the
carrier's own message id; a delivery receipt follows later, on its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import secrets
import uuid
from dataclasses import dataclass

from smsgw import metrics
from smsgw.domain.status import MessageStatus
from smsgw.ports import DeliveryReceipt, OutboundMessage, ProviderError, ReceiptSink, SendResult

_REMEMBERED = 1_000_000  # message ids kept to spot a second hand-over


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    latency_ms: float = 20.0
    failure_rate: float = 0.0  # retryable errors (throttling, timeouts)
    permanent_failure_rate: float = 0.0
    receipt_delay_ms: float = 500.0
    undelivered_rate: float = 0.0
    # Fault injection, for tests and drills.
    timeout_rate: float = 0.0  # never answers (the relay's send timeout fires)
    lost_receipt_rate: float = 0.0
    late_receipt_rate: float = 0.0
    late_receipt_ms: float = 30000.0


class CarrierSimulator:
    def __init__(self, config: SimulatorConfig, rng: random.Random | None = None,
                 name: str = "simulator") -> None:
        self.name = name
        self.config = config
        self._rng = rng or random.Random()
        self._on_receipt: ReceiptSink | None = None
        self._pending: set[asyncio.TimerHandle] = set()
        self.sent = 0
        # Our message ids, as a carrier logs them: the latest ones, so a long run stays small.
        self.client_references: collections.deque[str] = collections.deque(maxlen=_REMEMBERED)
        self._seen: dict[uuid.UUID, None] = {}  # insertion-ordered: the oldest go first
        self._accepted = metrics.SIMULATOR.labels(name, "accepted")
        self._duplicates = metrics.SIMULATOR.labels(name, "duplicate")

    async def start(self, on_receipt: ReceiptSink) -> None:
        self._on_receipt = on_receipt

    async def stop(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        self._on_receipt = None

    async def send(self, message: OutboundMessage) -> SendResult:
        if self.config.latency_ms > 0:
            await asyncio.sleep(self._jittered(self.config.latency_ms) / 1000)
        if self.config.timeout_rate and self._rng.random() < self.config.timeout_rate:
            await asyncio.Event().wait()  # hangs until the caller gives up
        roll = self._rng.random()
        if roll < self.config.permanent_failure_rate:
            raise ProviderError("SIM_REJECTED", "destination rejected by carrier", retryable=False)
        if roll < self.config.permanent_failure_rate + self.config.failure_rate:
            raise ProviderError("SIM_THROTTLED", "carrier throttled the request", retryable=True)
        provider_id = secrets.token_hex(8)
        self.sent += 1
        self._remember(message.id)
        self._schedule_receipt(provider_id)
        return SendResult(provider_message_id=provider_id)

    def _remember(self, message_id: uuid.UUID) -> None:
        """Counts what a real carrier's logs would show: a message handed over twice."""
        self.client_references.append(str(message_id))
        if message_id in self._seen:
            self._duplicates.inc()
            return
        self._accepted.inc()
        self._seen[message_id] = None
        if len(self._seen) > _REMEMBERED:
            del self._seen[next(iter(self._seen))]

    def _jittered(self, mean_ms: float) -> float:
        return mean_ms * (0.5 + self._rng.random())

    def _schedule_receipt(self, provider_id: str) -> None:
        if self._on_receipt is None or self._rng.random() < self.config.lost_receipt_rate:
            return
        undelivered = self._rng.random() < self.config.undelivered_rate
        receipt = DeliveryReceipt(
            provider=self.name, provider_message_id=provider_id,
            status=MessageStatus.UNDELIVERED if undelivered else MessageStatus.DELIVERED,
            error_code="SIM_ABSENT_SUBSCRIBER" if undelivered else "",
            error_description="handset unreachable" if undelivered else "",
        )
        loop = asyncio.get_running_loop()
        late = self._rng.random() < self.config.late_receipt_rate
        delay = self._jittered(self.config.late_receipt_ms if late
                               else self.config.receipt_delay_ms) / 1000
        handle: asyncio.TimerHandle

        def deliver() -> None:
            self._pending.discard(handle)
            if self._on_receipt is not None:
                with contextlib.suppress(Exception):
                    self._on_receipt(receipt)

        handle = loop.call_later(delay, deliver)
        self._pending.add(handle)
