"""The narrow interfaces between the services and the adapters behind them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from smsgw.domain.encoding import Encoding
from smsgw.domain.status import MessageStatus


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """What a provider needs to send one message, and nothing more.

    Every adapter passes ``id`` to the provider as its client reference, so a
    message sent twice (a relay killed mid-send) can be traced at the carrier.
    """

    id: uuid.UUID
    tenant_id: uuid.UUID
    to: str  # E.164, with the leading +
    body: str
    sender: str
    attempt: int
    encoding: Encoding


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_message_id: str
    # Every part's id when the provider acknowledged a long message in parts
    # (SMPP); the first is provider_message_id. Receipts may name any of them.
    part_ids: tuple[str, ...] = ()


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


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    provider: str
    provider_message_id: str
    status: MessageStatus  # DELIVERED or UNDELIVERED
    error_code: str = ""
    error_description: str = ""


ReceiptSink = Callable[[DeliveryReceipt], None]


class SendPort(Protocol):
    """Every provider adapter implements this and only this."""

    name: str

    async def send(self, message: OutboundMessage) -> SendResult:
        """Hands one message to the provider; raises ProviderError on refusal."""
        ...

    async def start(self, on_receipt: ReceiptSink) -> None: ...

    async def stop(self) -> None: ...


class IdempotencyCache(Protocol):
    """The fast path in front of the database's unique constraint.

    ``claim`` stores ``value`` under each key that is free and returns, per
    key, None when it was stored or the value already there. Losing the cache
    costs speed, never correctness: the database decides.
    """

    async def claim(self, tenant: uuid.UUID, items: Sequence[tuple[str, str]]) -> list[str | None]:
        ...

    async def release(self, tenant: uuid.UUID, keys: Sequence[str]) -> None: ...


Wakeup = Callable[[], Awaitable[None]]
