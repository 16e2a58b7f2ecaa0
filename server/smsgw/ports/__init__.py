"""The narrow interfaces between the services and the adapters behind them.

Services and the API import these and the domain records, never an adapter;
the composition root (``smsgw.app``) picks the adapters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from smsgw.domain.records import DeliveryReceipt, OutboundMessage, SendResult
from smsgw.ports.providers import ProviderError, ReceiptSink, SendPort
from smsgw.ports.stores import (
    DeadLetterStore,
    EventLog,
    IdempotencyCache,
    MessageStore,
    Outbox,
    RateLimiter,
    ReceiptStore,
    TenantDirectory,
    TenantRateLimiter,
    WebhookStore,
)

Wakeup = Callable[[], Awaitable[None]]

__all__ = [
    "DeadLetterStore", "DeliveryReceipt", "EventLog", "IdempotencyCache", "MessageStore",
    "OutboundMessage", "Outbox", "ProviderError", "RateLimiter", "ReceiptSink", "ReceiptStore",
    "SendPort", "SendResult", "TenantDirectory", "TenantRateLimiter", "Wakeup", "WebhookStore",
]
