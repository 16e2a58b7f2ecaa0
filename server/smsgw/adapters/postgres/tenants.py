"""Tenants and their API keys."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence

import asyncpg

from smsgw.adapters.postgres import queries
from smsgw.adapters.postgres.database import Database
from smsgw.domain.model import Tenant
from smsgw.domain.policy import QuietHours, TenantPolicy
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

    async def find(self, name_or_id: str) -> Tenant | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(Q["find_tenant"], name_or_id)
        return None if row is None else Tenant(row["id"], row["name"], frozenset())

    async def policies(self) -> dict[uuid.UUID, TenantPolicy]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(Q["tenant_policies"])
        return {row["id"]: _policy(row) for row in rows}

    async def set_policy(self, tenant_id: uuid.UUID, policy: TenantPolicy) -> bool:
        quiet = policy.quiet_hours
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                Q["set_tenant_policy"], tenant_id, policy.rate_per_second, policy.burst,
                policy.daily_segment_quota, policy.monthly_segment_quota, policy.weight,
                quiet.start if quiet else None, quiet.end if quiet else None)
        return row is not None


def _policy(row: asyncpg.Record) -> TenantPolicy:
    quiet = (QuietHours(row["quiet_start"], row["quiet_end"])
             if row["quiet_start"] is not None else None)
    return TenantPolicy(row["rate_per_second"], row["burst"], row["daily_segment_quota"],
                        row["monthly_segment_quota"], row["weight"], quiet)
