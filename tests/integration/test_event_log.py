"""The event log cursor never passes an event whose transaction commits late."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from smsgw.adapters.postgres.events import EventLog
from smsgw.domain.model import Cursor

pytestmark = pytest.mark.integration
INSERT = "INSERT INTO message_events (message_id, tenant_id, status) VALUES ($1, $2, $3)"


async def test_a_late_commit_is_read_after_earlier_ids_not_skipped(db, database_url):
    tenant = uuid.uuid4()
    log = EventLog(db)
    slow = await asyncpg.connect(database_url)
    fast = await asyncpg.connect(database_url)
    try:
        slow_tx = slow.transaction()
        await slow_tx.start()
        await slow.execute(INSERT, uuid.uuid4(), tenant, 1)  # lower id, still open
        await fast.execute(INSERT, uuid.uuid4(), tenant, 2)  # higher id, committed now

        while_open = await log.for_tenant(tenant, Cursor(0, 0), 100)
        assert while_open.events == []  # the committed one waits behind the open one
        position = max(Cursor(0, 0), Cursor(while_open.horizon - 1, 2**63 - 1))

        await slow_tx.commit()
        after = await log.for_tenant(tenant, position, 100)
        assert [e.status for e in after.events] == [1, 2]

        rest = await log.for_tenant(tenant, after.events[-1].cursor, 100)
        assert rest.events == []
    finally:
        await slow.close()
        await fast.close()


async def test_a_cursor_resumes_exactly_after_its_event(db, database_url):
    tenant = uuid.uuid4()
    conn = await asyncpg.connect(database_url)
    try:
        for status in range(1, 6):
            await conn.execute(INSERT, uuid.uuid4(), tenant, status)
    finally:
        await conn.close()
    log = EventLog(db)
    first = await log.for_tenant(tenant, Cursor(0, 0), 2)
    second = await log.for_tenant(tenant, first.events[-1].cursor, 10)
    assert [e.status for e in first.events + second.events] == [1, 2, 3, 4, 5]
    decoded = Cursor.decode(first.events[-1].cursor.encode())
    assert decoded == first.events[-1].cursor
