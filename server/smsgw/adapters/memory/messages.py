"""In-memory message store and tenant directory (see state.py)."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Sequence

from smsgw.adapters.memory.state import MemoryState, MessageRow, new_message, utc_now
from smsgw.domain.model import Message, MessageFilter, PageRequest, Submission, Tenant
from smsgw.domain.policy import UNLIMITED, TenantPolicy
from smsgw.domain.quota import (
    DAY,
    MONTH,
    PeriodUsage,
    QuotaRefusal,
    SegmentQuota,
    fitting,
    period_start,
    room,
)
from smsgw.domain.status import MessageStatus
from smsgw.domain.tenant_keys import KEY_PREFIX, hash_key


class MemoryMessageStore:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def insert(self, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID],
                     items: Sequence[Submission]) -> dict[uuid.UUID, dt.datetime]:
        self._s.begin()
        now = self._s.clock()
        written: dict[uuid.UUID, dt.datetime] = {}
        for message_id, item in zip(ids, items, strict=True):
            if (tenant_id, item.idempotency_key) in self._s.keys:
                continue
            message = new_message(
                tenant_id, message_id, now, to=item.to, body=item.body, sender=item.sender,
                encoding=item.encoding, segments=item.segments,
                client_reference=item.client_reference, idempotency_key=item.idempotency_key,
                metadata=item.metadata, traffic_class=item.traffic_class)
            message.send_at, message.expire_at = item.send_at, item.expire_at
            self._s.messages[message_id] = MessageRow(message, item.fingerprint,
                                                      due_at=item.send_at or now)
            self._s.keys[(tenant_id, item.idempotency_key)] = message_id
            self._s.append(message, None)
            written[message_id] = now
        return written

    async def insert_within_quota(
        self, tenant_id: uuid.UUID, ids: Sequence[uuid.UUID], items: Sequence[Submission],
        quota: SegmentQuota,
    ) -> tuple[dict[uuid.UUID, dt.datetime], QuotaRefusal | None]:
        counts = self._counts(tenant_id)
        left, binding = room(quota, counts)
        assert binding is not None  # a quota has at least one limit
        fresh = [(i, item) for i, item in zip(ids, items, strict=True)
                 if (tenant_id, item.idempotency_key) not in self._s.keys]
        fit = fitting([item.segments for _, item in fresh], left)
        written = await self.insert(tenant_id, [i for i, _ in fresh[:fit]],
                                    [item for _, item in fresh[:fit]])
        added = sum(item.segments for i, item in fresh[:fit] if i in written)
        for usage in counts:
            self._s.usage[(tenant_id, usage.period, usage.start)] = usage.used + added
        if fit == len(fresh):
            return written, None
        return written, QuotaRefusal(
            frozenset(i for i, _ in fresh[fit:]),
            PeriodUsage(binding.period, binding.start, binding.used + added),
            quota.limit(binding.period))

    async def usage(self, tenant_id: uuid.UUID) -> list[PeriodUsage]:
        now = self._s.clock()
        found = []
        for period in (DAY, MONTH):
            start = period_start(period, now)
            used = self._s.usage.get((tenant_id, period, start))
            found.append(PeriodUsage(period, start, self._accepted_since(tenant_id, start)
                                     if used is None else used))
        return found

    def _counts(self, tenant_id: uuid.UUID) -> list[PeriodUsage]:
        """As seed_usage and lock_usage: a period's first count starts from what it holds."""
        now = self._s.clock()
        counts = []
        for period in (DAY, MONTH):
            start = period_start(period, now)
            used = self._s.usage.setdefault((tenant_id, period, start),
                                            self._accepted_since(tenant_id, start))
            counts.append(PeriodUsage(period, start, used))
        return counts

    def _accepted_since(self, tenant_id: uuid.UUID, start: dt.date) -> int:
        since = dt.datetime.combine(start, dt.time(), dt.UTC)
        return sum(r.message.segments for r in self._s.messages.values()
                   if r.message.tenant_id == tenant_id and r.message.created_at >= since)

    async def find_by_keys(self, tenant_id: uuid.UUID,
                           keys: Sequence[str]) -> dict[str, tuple[str, uuid.UUID]]:
        found = {}
        for key in keys:
            message_id = self._s.keys.get((tenant_id, key))
            if message_id is not None:
                found[key] = (self._s.messages[message_id].fingerprint, message_id)
        return found

    async def get_many(self, tenant_id: uuid.UUID,
                       ids: Sequence[uuid.UUID]) -> list[Message]:
        rows = (self._s.messages.get(i) for i in dict.fromkeys(ids))
        return [self._s.snapshot(r) for r in rows
                if r is not None and r.message.tenant_id == tenant_id]

    async def list(self, tenant_id: uuid.UUID, where: MessageFilter,
                   page: PageRequest) -> list[Message]:
        rows = [r for r in self._s.messages.values()
                if r.message.tenant_id == tenant_id and _matches(r.message, where, page)]
        rows.sort(key=lambda r: (r.message.created_at, r.message.id), reverse=True)
        return [self._s.snapshot(r) for r in rows[:page.size]]

    async def cancel(self, tenant_id: uuid.UUID, message_id: uuid.UUID) -> Message | None:
        row = self._s.messages.get(message_id)
        if row is None or row.message.tenant_id != tenant_id or row.due_at is None \
                or row.message.status is not MessageStatus.QUEUED:
            return None
        self._s.begin()
        row.due_at = row.lease_owner = None
        self._s.move(row, MessageStatus.CANCELED, error_code="CANCELED",
                     error_description="canceled by the client")
        return self._s.snapshot(row)


def _matches(message: Message, where: MessageFilter, page: PageRequest) -> bool:
    if where.statuses and message.status not in where.statuses:
        return False
    if where.to and message.to != where.to:
        return False
    if where.created_from is not None and message.created_at < where.created_from:
        return False
    if where.created_before is not None and message.created_at >= where.created_before:
        return False
    if where.scheduled_only and not (
            message.status is MessageStatus.QUEUED and message.send_at is not None
            and message.send_at > utc_now()):
        return False
    return page.after is None or (message.created_at, message.id) < page.after


class MemoryTenantDirectory:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def create(self, name: str,
                     scopes: Sequence[str] = ("send",)) -> tuple[Tenant, str]:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        tenant = self._s.tenants.setdefault(name, Tenant(uuid.uuid4(), name))
        self._s.api_keys[hash_key(key)] = (tenant.id, frozenset(scopes))
        return Tenant(tenant.id, name, frozenset(scopes)), key

    async def find(self, name_or_id: str) -> Tenant | None:
        for tenant in self._s.tenants.values():
            if name_or_id in (tenant.name, str(tenant.id)):
                return Tenant(tenant.id, tenant.name, frozenset())
        return None

    async def policies(self) -> dict[uuid.UUID, TenantPolicy]:
        return {t.id: self._s.policies.get(t.id, UNLIMITED) for t in self._s.tenants.values()}

    async def set_policy(self, tenant_id: uuid.UUID, policy: TenantPolicy) -> bool:
        if not any(t.id == tenant_id for t in self._s.tenants.values()):
            return False
        self._s.policies[tenant_id] = policy
        return True

    async def by_key(self, key: str) -> Tenant | None:
        found = self._s.api_keys.get(hash_key(key))
        if found is None:
            return None
        tenant_id, scopes = found
        name = next(t.name for t in self._s.tenants.values() if t.id == tenant_id)
        return Tenant(tenant_id, name, scopes)
