"""One contract suite per store port, run against the Postgres adapter and the in-memory fake.

A test here takes ``stores`` and gets both, in turn: so the fake the unit
tier uses cannot drift from the adapter production uses (the provider
contract suite in tests/integration is the model).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from smsgw.adapters.memory import MemoryStores
from smsgw.adapters.postgres.database import Database
from smsgw.app import Stores, postgres_stores
from smsgw.domain.model import Submission
from smsgw.domain.validation import Limits, SendRequest, validate


@pytest_asyncio.fixture(params=["postgres", "memory"])
async def store_ports(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Stores]:
    if request.param == "memory":
        memory = MemoryStores()
        yield Stores(memory.messages, memory.outbox, memory.events, memory.receipts,
                     memory.webhooks, memory.dead_letters, memory.tenants)
        return
    db = Database(database_url, pool_size=2)
    await db.open()
    try:
        yield postgres_stores(db)
    finally:
        await db.close()


def submission(n: int = 0, **fields: Any) -> Submission:
    return validate(SendRequest(**{"to": "+16502530000", "body": f"hello {n}",
                                   "idempotency_key": f"key-{n}", **fields}), Limits())


async def accepted(stores: Stores, count: int = 1,
                   tenant: uuid.UUID | None = None) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A tenant with ``count`` freshly accepted messages."""
    if tenant is None:
        tenant = (await stores.tenants.create(f"t-{uuid.uuid4().hex[:8]}"))[0].id
    ids = [uuid.uuid4() for _ in range(count)]
    await stores.messages.insert(tenant, ids, [submission(n) for n in range(count)])
    return tenant, ids


async def new_tenant(stores: Stores) -> uuid.UUID:
    return (await stores.tenants.create(f"t-{uuid.uuid4().hex[:8]}"))[0].id
