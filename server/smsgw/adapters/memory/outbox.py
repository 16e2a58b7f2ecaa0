"""In-memory outbox: leases, outcomes, dead letters (see state.py)."""

from __future__ import annotations

import collections
import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

from smsgw.adapters.memory.state import MemoryState, MessageRow
from smsgw.domain.fairness import Backlog, Pick
from smsgw.domain.lanes import Lane, lane_of
from smsgw.domain.policy import UNLIMITED
from smsgw.domain.records import DeadLetter, OutboundMessage, Outcome
from smsgw.domain.status import MessageStatus, can_transition

_CLAIMABLE = (MessageStatus.QUEUED, MessageStatus.SENDING)


class MemoryOutbox:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def backlog(self, cap: int) -> list[Backlog]:
        due: collections.Counter[tuple[Lane, uuid.UUID]] = collections.Counter(
            (lane_of(row.message.traffic_class), row.message.tenant_id)
            for row in self._due(self._s.clock()))
        return [Backlog(lane, tenant, min(cap, n), self._s.policies.get(tenant, UNLIMITED).weight)
                for (lane, tenant), n in sorted(due.items())]

    async def claim(self, owner: str, picks: Sequence[Pick],
                    lease_seconds: float) -> list[OutboundMessage]:
        now = self._s.clock()
        wanted = {(p.lane, p.tenant_id): p.count for p in picks}
        due: list[MessageRow] = []
        for row in sorted(self._due(now), key=lambda r: r.due_at or now):
            key = (lane_of(row.message.traffic_class), row.message.tenant_id)
            if wanted.get(key, 0) > 0:
                wanted[key] -= 1
                due.append(row)
        self._s.begin()
        claimed = []
        for row in due:
            row.lease_owner, row.due_at = owner, now + dt.timedelta(seconds=lease_seconds)
            message = row.message
            if message.status not in _CLAIMABLE:
                continue
            message.attempts += 1
            if message.status is MessageStatus.QUEUED:
                self._s.move(row, MessageStatus.SENDING, bare=True)
            claimed.append(_outbound(row))
        return claimed

    def _due(self, now: dt.datetime) -> list[MessageRow]:
        return [r for r in self._s.messages.values() if r.due_at is not None and r.due_at <= now]

    async def record(self, owner: str, outcomes: Sequence[Outcome]) -> set[uuid.UUID]:
        self._s.begin()
        owned: set[uuid.UUID] = set()
        for outcome in outcomes:
            row = self._s.messages.get(outcome.id)
            if row is None or row.due_at is None or row.lease_owner != owner:
                continue
            owned.add(outcome.id)
            if len(outcome.part_ids) > 1:
                row.parts.update(dict.fromkeys(outcome.part_ids))
            self._release(row, outcome)
            if row.message.status is MessageStatus.SENDING:
                self._apply(row, outcome)
        return owned

    async def depth(self) -> int:
        return sum(1 for r in self._s.messages.values() if r.due_at is not None)

    async def next_due(self) -> dt.timedelta | None:
        due = [r.due_at for r in self._s.messages.values() if r.due_at is not None]
        return min(due) - self._s.clock() if due else None

    async def expire_overdue(self, limit: int = 1000) -> int:
        now = self._s.clock()
        overdue = sorted(
            (r for r in self._s.messages.values()
             if r.due_at is not None and r.message.expire_at is not None
             and r.message.expire_at <= now and (r.lease_owner is None or r.due_at <= now)
             and can_transition(r.message.status, MessageStatus.EXPIRED)),
            key=lambda r: r.message.expire_at or now)[:limit]
        self._s.begin()
        for row in overdue:
            assert row.message.expire_at is not None
            ended = row.message.expire_at.astimezone(dt.UTC)
            row.due_at = row.lease_owner = None
            self._s.move(row, MessageStatus.EXPIRED, error_code="VALIDITY_EXPIRED",
                         error_description="not handed to a provider before its validity "
                                           f"ended at {ended:%Y-%m-%dT%H:%M:%SZ}")
        return len(overdue)

    def _release(self, row: MessageRow, outcome: Outcome) -> None:
        row.lease_owner = None
        if outcome.retry_in_ms is None:
            row.due_at = None
        else:
            row.due_at = self._s.clock() + dt.timedelta(milliseconds=outcome.retry_in_ms)

    def _apply(self, row: MessageRow, outcome: Outcome) -> None:
        message = row.message
        changes: dict[str, Any] = {
            "provider_message_id": outcome.provider_message_id,
            "error_code": outcome.error_code, "error_description": outcome.error_description,
            "attempts": message.attempts - outcome.refund}
        if outcome.provider:
            changes["provider"] = outcome.provider
        if outcome.route:
            changes["route"] = outcome.route
        if outcome.status is MessageStatus.SENT:
            changes["sent_at"] = self._s.clock()
        if outcome.segments is not None:
            changes["segments"] = outcome.segments
        self._s.move(row, outcome.status, **changes)
        if outcome.dead_letter and message.id not in self._s.dead_letters:
            self._s.dead_letters[message.id] = self._dead_letter(row)

    def _dead_letter(self, row: MessageRow) -> DeadLetter:
        m = row.message
        errors = [{"attempt": e.attempt, "provider": e.provider, "error_code": e.error_code,
                   "error_description": e.error_description,
                   "occurred_at": e.occurred_at.isoformat()}
                  for _, e in self._s.events if e.message_id == m.id and e.error_code]
        request = {"to": m.to, "body": m.body, "sender": m.sender,
                   "client_reference": m.client_reference, "metadata": dict(m.metadata),
                   "idempotency_key": m.idempotency_key, "traffic_class": m.traffic_class,
                   "created_at": m.created_at.isoformat()}
        # The statement's own FAILED event is among ``errors`` here; Postgres appends
        # the last attempt from the row because its event is not yet visible to it.
        return DeadLetter(m.id, m.tenant_id, m.provider, m.route, m.error_code,
                          m.error_description, request, errors, self._s.clock(), None, None)


def _outbound(row: MessageRow) -> OutboundMessage:
    m = row.message
    return OutboundMessage(id=m.id, tenant_id=m.tenant_id, to=m.to, body=m.body,
                           sender=m.sender, attempt=m.attempts, encoding=m.encoding,
                           client_reference=m.client_reference, created_at=m.created_at,
                           traffic_class=m.traffic_class, expire_at=m.expire_at)
