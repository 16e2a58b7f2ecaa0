"""The records the services and the stores hand each other, defined once, in the domain.

Stores (Postgres, or the in-memory fakes) build them and services read them;
neither side owns them, so neither imports the other.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from smsgw.domain.encoding import Encoding
from smsgw.domain.model import Cursor, StatusEvent
from smsgw.domain.routing import DEFAULT_TRAFFIC_CLASS
from smsgw.domain.status import MessageStatus


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message on its way to a provider: what the relay leased and the adapter sends.

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
    client_reference: str = ""
    created_at: dt.datetime = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    traffic_class: str = DEFAULT_TRAFFIC_CLASS
    # The end of its validity: never handed to a provider after this; what
    # is left of it goes to carriers that take a validity period.
    expire_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_message_id: str
    # Every part's id when the provider acknowledged a long message in parts
    # (SMPP); the first is provider_message_id. Receipts may name any of them.
    part_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    provider: str
    provider_message_id: str
    status: MessageStatus  # DELIVERED or UNDELIVERED
    error_code: str = ""
    error_description: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the relay learned about one leased message."""

    id: uuid.UUID
    status: MessageStatus
    provider: str = ""
    provider_message_id: str = ""
    error_code: str = ""
    error_description: str = ""
    retry_in_ms: int | None = None  # set: back to QUEUED, due again after this delay
    route: str = ""
    refund: bool = False  # a deferral: no provider was asked, the attempt doesn't count
    dead_letter: bool = False  # retries exhausted: keep it in the dead-letter queue
    part_ids: tuple[str, ...] = ()  # every part's provider id, for a multipart message
    segments: int | None = None  # the parts the provider sent, when it reported them


@dataclass(frozen=True, slots=True)
class EventPage:
    events: list[StatusEvent]
    # Every event before (horizon, 0) is final; a reader that got fewer
    # events than it asked for has seen all of them.
    horizon: int


@dataclass(frozen=True, slots=True)
class WatchTarget:
    id: uuid.UUID
    status: MessageStatus
    last_event: Cursor | None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A tenant's webhook endpoint, with its own position in the event log."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    url: str
    statuses: frozenset[MessageStatus]  # empty: all
    secret: str
    enabled: bool
    disabled_reason: str
    cursor: Cursor
    failures: int
    created_at: dt.datetime

    def wants(self, status: MessageStatus) -> bool:
        return not self.statuses or status in self.statuses


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver one event to one endpoint."""

    event_id: str
    message_id: uuid.UUID
    status: MessageStatus
    attempt: int
    http_status: int
    error: str
    duration_ms: int
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class DeadLetterFilter:
    tenant_id: uuid.UUID | None = None
    provider: str = ""
    error_code: str = ""
    pending_only: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: uuid.UUID
    tenant_id: uuid.UUID
    provider: str
    route: str
    error_code: str
    error_description: str
    request: dict[str, Any]
    attempts: list[dict[str, Any]]
    dead_at: dt.datetime
    replay_message_id: uuid.UUID | None
    replayed_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Replayed:
    message_id: uuid.UUID
    replay_message_id: uuid.UUID
    already_replayed: bool
