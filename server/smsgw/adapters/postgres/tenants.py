"""Tenants and their API keys."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence

from smsgw.adapters.postgres import queries
from smsgw.adapters.postgres.database import Database
from smsgw.domain.model import Tenant
from smsgw.domain.tenant_keys import KEY_PREFIX, hash_key

Q = queries.load("tenants")
class TenantDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, name: str, scopes: Sequence[str] = ("send",)) -> tuple[Tenant, str]:
        """Creates the tenant if needed and issues a new key, returned only here."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self._db.transaction() as conn:
            await conn.execute(Q["create_tenant"], uuid.uuid4(), name)
            row = await conn.fetchrow(Q["tenant_by_name"], name)
            assert row is not None
            await conn.execute(Q["add_api_key"], hash_key(key), row["id"], key[:8], list(scopes))
        return Tenant(row["id"], row["name"], frozenset(scopes)), key

    async def by_key(self, key: str) -> Tenant | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(Q["tenant_by_key"], hash_key(key))
        return None if row is None else Tenant(row["id"], row["name"], frozenset(row["scopes"]))
