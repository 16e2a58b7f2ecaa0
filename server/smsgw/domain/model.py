"""The gateway's records, as plain data the adapters and the API translate."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field

from smsgw.domain.encoding import Encoding
from smsgw.domain.routing import DEFAULT_TRAFFIC_CLASS
from smsgw.domain.status import MessageStatus


@dataclass(frozen=True, slots=True)
class Tenant:
    id: uuid.UUID
    name: str
    # What the key that identified the tenant may do: 'send' (SmsService),
    # 'admin' (SmsAdminService, across tenants).
    scopes: frozenset[str] = frozenset({"send"})


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated send request: everything needed to store it, nothing to look up."""

    to: str
    body: str
    sender: str
    client_reference: str
    metadata: dict[str, str]
    idempotency_key: str
    encoding: Encoding
    segments: int
    fingerprint: str
    traffic_class: str = DEFAULT_TRAFFIC_CLASS
    send_at: dt.datetime | None = None  # scheduled: due then, not before
    expire_at: dt.datetime | None = None  # not handed to a provider by then: EXPIRED


@dataclass(slots=True)
class Message:
    id: uuid.UUID
    tenant_id: uuid.UUID
    to: str
    body: str
    sender: str
    encoding: Encoding
    segments: int
    status: MessageStatus
    attempts: int
    client_reference: str
    idempotency_key: str
    created_at: dt.datetime
    updated_at: dt.datetime
    metadata: dict[str, str] = field(default_factory=dict)
    provider: str = ""
    provider_message_id: str = ""
    error_code: str = ""
    error_description: str = ""
    sent_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    traffic_class: str = DEFAULT_TRAFFIC_CLASS
    route: str = ""
    send_at: dt.datetime | None = None
    expire_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class StatusEvent:
    cursor: Cursor
    message_id: uuid.UUID
    status: MessageStatus
    previous_status: MessageStatus | None
    occurred_at: dt.datetime
    attempt: int = 0
    provider: str = ""
    provider_message_id: str = ""
    error_code: str = ""
    error_description: str = ""
    client_reference: str = ""


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """Position in the event log: (writing transaction id, event id).

    Event ids are handed out in insertion order but transactions commit in
    any order, so a reader that only went by id could skip an event committed
    late. The log is therefore read in (txid, id) order and only below the
    oldest transaction still running, where nothing new can appear.
    """

    txid: int
    seq: int

    def encode(self) -> str:
        return f"c1.{self.txid:x}.{self.seq:x}"

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        parts = text.split(".")
        if len(parts) != 3 or parts[0] != "c1":
            return None
        try:
            txid, seq = int(parts[1], 16), int(parts[2], 16)
        except ValueError:
            return None
        if not (0 <= txid < 2**63 and 0 <= seq < 2**63):
            return None
        # int() also takes "0x1", " 1", "+1", "1_0" and non-ASCII digits: one token per position.
        cursor = cls(txid, seq)
        return cursor if cursor.encode() == text else None


@dataclass(frozen=True, slots=True)
class MessageFilter:
    statuses: tuple[MessageStatus, ...] = ()
    to: str = ""
    created_from: dt.datetime | None = None
    created_before: dt.datetime | None = None
    scheduled_only: bool = False  # QUEUED with a send_at still ahead


@dataclass(frozen=True, slots=True)
class PageRequest:
    size: int
    after: tuple[dt.datetime, uuid.UUID] | None


@dataclass(frozen=True, slots=True)
class SubmitOutcome:
    """One item's result: the stored (or replayed) message, or why it was refused."""

    message: Message | None
    error: Exception | None = None
    replayed: bool = False
