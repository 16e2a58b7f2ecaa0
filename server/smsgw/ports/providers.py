"""The provider port: what every carrier adapter implements, and only that."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from smsgw.domain.records import DeliveryReceipt, OutboundMessage, SendResult


class ProviderError(Exception):
    """A provider refused or failed a send; ``retryable`` decides what happens next."""

    def __init__(self, code: str, description: str, *, retryable: bool,
                 throttled: bool = False) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.retryable = retryable
        # The carrier is up but wants less traffic: retry later, and don't
        # count it towards opening the circuit breaker.
        self.throttled = throttled


ReceiptSink = Callable[[DeliveryReceipt], None]


class SendPort(Protocol):
    """Every provider adapter implements this and only this."""

    name: str

    async def send(self, message: OutboundMessage) -> SendResult:
        """Hands one message to the provider; raises ProviderError on refusal."""
        ...

    async def start(self, on_receipt: ReceiptSink) -> None: ...

    async def stop(self) -> None: ...
