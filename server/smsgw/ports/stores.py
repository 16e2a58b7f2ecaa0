"""The store ports: one narrow Protocol per concern the services need from storage.

Each has a Postgres (or Redis) adapter and an in-memory fake
(``smsgw.adapters.memory``), and one contract suite runs against both
(``tests/contract``), so the fake cannot drift from the real thing. Every
method may raise ``Unavailable`` when its store cannot be reached.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Protocol

from smsgw.domain.fairness import Backlog, Pick
from smsgw.domain.model import (
    Cursor,
    Message,
    MessageFilter,
    PageRequest,
    Submission,
    Tenant,
)
from smsgw.domain.policy import TenantPolicy
from smsgw.domain.quota import PeriodUsage, QuotaRefusal, SegmentQuota
from smsgw.domain.records import (
    DeadLetter,
    DeadLetterFilter,
    Delivery,
    DeliveryReceipt,
    Endpoint,
    EventPage,
    OutboundMessage,
    Outcome,
    Replayed,
    WatchTarget,
)
from smsgw.domain.status import MessageStatus


class MessageStore(Protocol):
    """Accepted messages: each written with its outbox row and first event, atomically."""

    async def insert(self, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID],
                     items: Sequence[Submission]) -> dict[uuid.UUID, dt.datetime]:
        """Writes what is new; returns {id: created_at} for those written.

        Items whose idempotency key the tenant already used are left out;
        the caller resolves them with ``find_by_keys``.
        """
        ...

    async def insert_within_quota(
        self, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID], items: Sequence[Submission],
        quota: SegmentQuota,
    ) -> tuple[dict[uuid.UUID, dt.datetime], QuotaRefusal | None]:
        """``insert``, counting segments against the tenant's quotas in the same transaction.

        The new items that fit, in order (a prefix), are written and their
        segments counted in the day's and the month's usage; the new items
        after the first that does not fit are refused (returned in the
        refusal with the period that refused them). Items whose key is taken
        are neither written nor counted nor refused.
        """
        ...

    async def usage(self, tenant_id: uuid.UUID) -> list[PeriodUsage]:
        """Segments accepted in the current UTC day and month (in that order)."""
        ...

    async def find_by_keys(self, tenant_id: uuid.UUID,
                           keys: Sequence[str]) -> dict[str, tuple[str, uuid.UUID]]:
        """key -> (fingerprint, message id) for the keys already used."""
        ...

    async def get_many(self, tenant_id: uuid.UUID,
                       ids: Sequence[uuid.UUID]) -> list[Message]: ...

    async def list(self, tenant_id: uuid.UUID, where: MessageFilter,
                   page: PageRequest) -> list[Message]:
        """Newest first, by (created_at, id), after ``page.after``."""
        ...

    async def cancel(self, tenant_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
        """Cancels a message not yet handed to a provider; None if it could not be."""
        ...


class Outbox(Protocol):
    """Due work for the relay, leased so that any number of relays can share it."""

    async def backlog(self, cap: int) -> list[Backlog]:
        """How many messages are due per (lane, tenant), each counted up to ``cap``,
        with the tenant's weight: what the relay shares a claim by."""
        ...

    async def claim(self, owner: str, picks: Sequence[Pick],
                    lease_seconds: float) -> list[OutboundMessage]:
        """Leases, for each pick, up to its count of that (lane, tenant)'s due messages
        (oldest due first), marks them SENDING and counts an attempt."""
        ...

    async def record(self, owner: str, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        """Applies the outcomes whose rows this owner still leases; returns their ids."""
        ...

    async def depth(self) -> int: ...

    async def next_due(self) -> dt.timedelta | None:
        """How long until the earliest row falls due, by the store's clock (zero or
        negative: one is due now); None when the outbox is empty."""
        ...

    async def expire_overdue(self, limit: int = 1000) -> int:
        """Ends as EXPIRED the messages whose validity ran out while they waited and that
        no relay holds (never leased, or the lease lapsed); returns how many."""
        ...


class EventLog(Protocol):
    """The append-only status history, read in commit-safe cursor order."""

    async def for_tenant(self, tenant_id: uuid.UUID, after: Cursor,
                         limit: int) -> EventPage: ...

    async def for_messages(self, ids: Sequence[uuid.UUID], after: Cursor,
                           limit: int) -> EventPage: ...

    async def horizon(self) -> int:
        """Every event before (horizon, 0) is visible: no open transaction can add one."""
        ...

    async def watch_targets(self, tenant_id: uuid.UUID,
                            ids: Sequence[uuid.UUID]) -> list[WatchTarget]: ...


class ReceiptStore(Protocol):
    """Delivery receipts matched to the messages (or parts) they concern."""

    async def apply(self, provider: str, receipts: Sequence[DeliveryReceipt]) -> set[str]:
        """Records the receipts that match a SENT message; returns their provider ids."""
        ...

    async def known(self, provider: str, provider_message_ids: Sequence[str]) -> set[str]:
        """The ids that belong to some message (or part) of this provider."""
        ...

    async def hold(self, provider: str, receipts: Sequence[DeliveryReceipt]) -> None:
        """Keeps receipts that matched nothing yet, durably, for ``retry_held``."""
        ...

    async def retry_held(self, window_seconds: float, limit: int = 1000
                         ) -> tuple[list[DeliveryReceipt], list[DeliveryReceipt]]:
        """Tries held receipts again: (now matched, given up on after the window)."""
        ...

    async def expire_unreceipted(self, timeout_seconds: float, limit: int = 1000) -> int:
        """Ends SENT messages whose receipt never came as EXPIRED; returns how many."""
        ...


class WebhookStore(Protocol):
    """Webhook endpoints, their cursors in the event log, and delivery attempts."""

    async def create(self, tenant: uuid.UUID, url: str, statuses: Sequence[MessageStatus],
                     secret: str) -> Endpoint: ...

    async def for_tenant(self, tenant: uuid.UUID) -> list[Endpoint]: ...

    async def delete(self, tenant: uuid.UUID, endpoint: uuid.UUID) -> Endpoint | None: ...

    async def lease_due(self, owner: str, limit: int,
                        lease_seconds: float) -> list[Endpoint]: ...

    async def advance(self, endpoint: uuid.UUID, owner: str, cursor: Cursor) -> None: ...

    async def release(self, endpoint: uuid.UUID, owner: str, *, delay_seconds: float,
                      failures: int, enabled: bool = True, reason: str = "") -> None: ...

    async def record(self, endpoint: uuid.UUID, delivery: Delivery) -> None: ...

    async def deliveries(self, tenant: uuid.UUID, endpoint: uuid.UUID,
                         limit: int) -> list[Delivery]: ...


class DeadLetterStore(Protocol):
    """Messages that exhausted their retries, and their replay (once each)."""

    async def find(self, where: DeadLetterFilter, limit: int,
                   after: tuple[dt.datetime, uuid.UUID] | None = None) -> list[DeadLetter]: ...

    async def replay(self, message_ids: Sequence[uuid.UUID]) -> list[Replayed]: ...


class TenantDirectory(Protocol):
    """Tenants and their API keys (stored hashed; a key is shown once, at creation)."""

    async def create(self, name: str,
                     scopes: Sequence[str] = ("send",)) -> tuple[Tenant, str]: ...

    async def by_key(self, key: str) -> Tenant | None: ...

    async def find(self, name_or_id: str) -> Tenant | None:
        """A tenant by its name, or by its id written as a UUID."""
        ...

    async def policies(self) -> dict[uuid.UUID, TenantPolicy]:
        """Every tenant's traffic policy (tenants are few: read whole, cached by callers)."""
        ...

    async def set_policy(self, tenant_id: uuid.UUID, policy: TenantPolicy) -> bool:
        """Replaces a tenant's policy; False when there is no such tenant."""
        ...


class IdempotencyCache(Protocol):
    """The fast path in front of the database's unique constraint.

    ``claim`` stores ``value`` under each key that is free and returns, per
    key, None when it was stored or the value already there. Losing the cache
    costs speed, never correctness: the database decides.
    """

    async def claim(self, tenant: uuid.UUID,
                    items: Sequence[tuple[str, str]]) -> list[str | None]: ...

    async def release(self, tenant: uuid.UUID, keys: Sequence[str]) -> None: ...


class RateLimiter(Protocol):
    """A provider's token bucket, shared by every relay process."""

    async def acquire(self, max_wait_seconds: float) -> float | None:
        """Takes one token: None when taken, else how long until one is likely.

        Raises ``Unavailable`` when the shared state cannot be reached.
        """
        ...

    def room(self, now: float) -> int:
        """How many sends the limiter can likely serve soon (few while it is unreachable):
        the relay claims no more, so the rest waits in the outbox."""
        ...


class TenantRateLimiter(Protocol):
    """Each tenant's submission rate, shared by every replica (a GCRA on Redis's clock)."""

    async def take(self, tenant: uuid.UUID, rate: float, burst: int,
                   count: int) -> tuple[int, float]:
        """Takes up to ``count`` permits at ``rate`` per second with ``burst`` at once.

        Returns (granted, seconds until the next permit is free): granted may
        be fewer than asked (none when the tenant is over its rate); the wait
        is 0 while permits are left. Raises ``Unavailable`` when the shared
        state cannot be reached.
        """
        ...
