"""The tenant directory's policies, against Postgres and the in-memory fake."""

from __future__ import annotations

import datetime as dt
import uuid

from smsgw.app import Stores
from smsgw.domain.policy import UNLIMITED, QuietHours, TenantPolicy
from tests.contract.conftest import new_tenant


async def test_a_new_tenant_is_unlimited(store_ports: Stores) -> None:
    tenant = await new_tenant(store_ports)
    assert (await store_ports.tenants.policies())[tenant] == UNLIMITED


async def test_a_policy_set_is_read_back_whole(store_ports: Stores) -> None:
    tenant, other = await new_tenant(store_ports), await new_tenant(store_ports)
    policy = TenantPolicy(rate_per_second=12.5, burst=40, daily_segment_quota=1000,
                          monthly_segment_quota=20000, weight=3,
                          quiet_hours=QuietHours(dt.time(21), dt.time(8, 30)))
    assert await store_ports.tenants.set_policy(tenant, policy)
    policies = await store_ports.tenants.policies()
    assert policies[tenant] == policy and policies[other] == UNLIMITED
    assert await store_ports.tenants.set_policy(tenant, UNLIMITED)
    assert (await store_ports.tenants.policies())[tenant] == UNLIMITED


async def test_setting_an_unknown_tenant_changes_nothing(store_ports: Stores) -> None:
    assert not await store_ports.tenants.set_policy(uuid.uuid4(), TenantPolicy(weight=2))


async def test_a_tenant_is_found_by_name_or_id(store_ports: Stores) -> None:
    tenant, _ = await store_ports.tenants.create(f"acme-{uuid.uuid4().hex[:6]}")
    by_name = await store_ports.tenants.find(tenant.name)
    by_id = await store_ports.tenants.find(str(tenant.id))
    assert by_name is not None and by_id is not None
    assert (by_name.id, by_name.name) == (by_id.id, by_id.name) == (tenant.id, tenant.name)
    assert await store_ports.tenants.find("no-such-tenant") is None
