"""In-memory webhook endpoints and deliveries (see state.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Sequence

from smsgw.adapters.memory.state import EndpointRow, MemoryState
from smsgw.domain.model import Cursor
from smsgw.domain.records import Delivery, Endpoint
from smsgw.domain.status import MessageStatus

_END_OF_TXID = 2**63 - 1


class MemoryWebhookStore:
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def create(self, tenant: uuid.UUID, url: str, statuses: Sequence[MessageStatus],
                     secret: str) -> Endpoint:
        now = self._s.clock()
        endpoint = Endpoint(uuid.uuid4(), tenant, url, frozenset(statuses), secret, True, "",
                            Cursor(self._s.horizon() - 1, _END_OF_TXID), 0, now)
        self._s.endpoints[endpoint.id] = EndpointRow(endpoint, now)
        return endpoint

    async def for_tenant(self, tenant: uuid.UUID) -> list[Endpoint]:
        rows = [r.endpoint for r in self._s.endpoints.values() if r.endpoint.tenant_id == tenant]
        return sorted(rows, key=lambda e: e.created_at)

    async def delete(self, tenant: uuid.UUID, endpoint: uuid.UUID) -> Endpoint | None:
        row = self._s.endpoints.get(endpoint)
        if row is None or row.endpoint.tenant_id != tenant:
            return None
        del self._s.endpoints[endpoint]
        return row.endpoint

    async def lease_due(self, owner: str, limit: int, lease_seconds: float) -> list[Endpoint]:
        now = self._s.clock()
        due = sorted((r for r in self._s.endpoints.values()
                      if r.endpoint.enabled and r.next_attempt_at <= now),
                     key=lambda r: r.next_attempt_at)[:limit]
        for row in due:
            row.lease_owner = owner
            row.next_attempt_at = now + dt.timedelta(seconds=lease_seconds)
        return [r.endpoint for r in due]

    async def advance(self, endpoint: uuid.UUID, owner: str, cursor: Cursor) -> None:
        row = self._leased(endpoint, owner)
        if row is not None:
            row.endpoint = dataclasses.replace(row.endpoint, cursor=cursor, failures=0)

    async def release(self, endpoint: uuid.UUID, owner: str, *, delay_seconds: float,
                      failures: int, enabled: bool = True, reason: str = "") -> None:
        row = self._leased(endpoint, owner)
        if row is None:
            return
        row.lease_owner = None
        row.next_attempt_at = self._s.clock() + dt.timedelta(seconds=delay_seconds)
        row.endpoint = dataclasses.replace(row.endpoint, failures=failures, enabled=enabled,
                                           disabled_reason=reason)

    async def record(self, endpoint: uuid.UUID, delivery: Delivery) -> None:
        row = self._s.endpoints.get(endpoint)
        if row is not None:
            row.deliveries.append(dataclasses.replace(delivery, created_at=self._s.clock()))

    async def deliveries(self, tenant: uuid.UUID, endpoint: uuid.UUID,
                         limit: int) -> list[Delivery]:
        row = self._s.endpoints.get(endpoint)
        if row is None or row.endpoint.tenant_id != tenant:
            return []
        return list(reversed(row.deliveries))[:limit]

    def _leased(self, endpoint: uuid.UUID, owner: str) -> EndpointRow | None:
        row = self._s.endpoints.get(endpoint)
        return row if row is not None and row.lease_owner == owner else None
