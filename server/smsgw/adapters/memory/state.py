"""The shared state of the in-memory stores: one process's Postgres, as far as the ports see it.

The fakes (after procrastinate's ``InMemoryConnector``) keep rows in dicts
and do what the SQL does: a status changes only along the state machine in
``domain/status.py`` (the same declaration the SQL guards follow), every
change appends an event, and each write is one "transaction" with its own
txid, so cursors and horizons behave as in Postgres (without concurrent
transactions, the horizon is simply the next txid). The contract suites in
``tests/contract`` run each port against this and against Postgres.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from smsgw.domain.encoding import Encoding
from smsgw.domain.model import Cursor, Message, StatusEvent, Tenant
from smsgw.domain.policy import TenantPolicy
from smsgw.domain.records import DeadLetter, Delivery, DeliveryReceipt, Endpoint
from smsgw.domain.status import MessageStatus, can_transition

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class MessageRow:
    """A message as stored, with what only the store knows (fingerprint, lease, parts)."""

    message: Message
    fingerprint: str
    due_at: dt.datetime | None = None  # in the outbox while set
    lease_owner: str | None = None
    parts: dict[str, MessageStatus | None] = field(default_factory=dict)  # part id -> report
    part_errors: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(slots=True)
class HeldReceipt:
    receipt: DeliveryReceipt
    received_at: dt.datetime


@dataclass(slots=True)
class EndpointRow:
    endpoint: Endpoint
    next_attempt_at: dt.datetime
    lease_owner: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)


@dataclass
class MemoryState:
    clock: Clock = utc_now
    messages: dict[uuid.UUID, MessageRow] = field(default_factory=dict)
    keys: dict[tuple[uuid.UUID, str], uuid.UUID] = field(default_factory=dict)
    events: list[tuple[uuid.UUID, StatusEvent]] = field(default_factory=list)  # with tenant
    held: dict[tuple[str, str, MessageStatus], HeldReceipt] = field(default_factory=dict)
    dead_letters: dict[uuid.UUID, DeadLetter] = field(default_factory=dict)
    endpoints: dict[uuid.UUID, EndpointRow] = field(default_factory=dict)
    tenants: dict[str, Tenant] = field(default_factory=dict)  # by name
    api_keys: dict[bytes, tuple[uuid.UUID, frozenset[str]]] = field(default_factory=dict)
    policies: dict[uuid.UUID, TenantPolicy] = field(default_factory=dict)
    # (tenant, 'd' or 'm', period start) -> segments, as the tenant_usage table
    usage: dict[tuple[uuid.UUID, str, dt.date], int] = field(default_factory=dict)
    _txids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _seqs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    txid: int = 0

    def begin(self) -> int:
        """One write, one transaction: the txid its events carry."""
        self.txid = next(self._txids)
        return self.txid

    def horizon(self) -> int:
        """Nothing is in flight between calls, so every txid handed out is visible."""
        return self.txid + 1

    def move(self, row: MessageRow, to: MessageStatus, *, bare: bool = False,
             **changes: Any) -> bool:
        """Changes a message's status along the state machine and appends its event.

        Refuses (returns False) a change the state machine does not allow, as
        the SQL guards do. A *bare* event (a claim's SENDING) carries no
        provider or error, as the claim statement writes it.
        """
        message = row.message
        if not can_transition(message.status, to):
            return False
        previous = message.status
        message.status = to
        for name, value in changes.items():
            setattr(message, name, value)
        message.updated_at = self.clock()
        self.append(message, previous, bare=bare)
        return True

    def append(self, message: Message, previous: MessageStatus | None, *,
               bare: bool = False) -> None:
        detailed = previous is not None and not bare
        event = StatusEvent(
            cursor=Cursor(self.txid, next(self._seqs)), message_id=message.id,
            status=message.status, previous_status=previous, occurred_at=self.clock(),
            attempt=message.attempts if previous is not None else 0,
            provider=message.provider if detailed else "",
            provider_message_id=message.provider_message_id if detailed else "",
            error_code=message.error_code if detailed else "",
            error_description=message.error_description if detailed else "",
            client_reference=message.client_reference)
        self.events.append((message.tenant_id, event))

    def snapshot(self, row: MessageRow) -> Message:
        """A copy callers may keep: the stored row changes under them otherwise."""
        message = row.message
        return Message(**{f.name: getattr(message, f.name) for f in fields(Message)})


def new_message(tenant: uuid.UUID, message_id: uuid.UUID, now: dt.datetime, *, to: str,
                body: str, sender: str, encoding: Encoding, segments: int,
                client_reference: str, idempotency_key: str, metadata: dict[str, str],
                traffic_class: str) -> Message:
    return Message(id=message_id, tenant_id=tenant, to=to, body=body, sender=sender,
                   encoding=encoding, segments=segments, status=MessageStatus.QUEUED,
                   attempts=0, client_reference=client_reference,
                   idempotency_key=idempotency_key, created_at=now, updated_at=now,
                   metadata=dict(metadata), traffic_class=traffic_class)
