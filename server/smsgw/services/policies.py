"""Every tenant's traffic policy, held in memory and refreshed from the store.

The submit path and the relay look a policy up per message, so it must cost
a dict lookup, not a query. Tenants are few, so the whole table is read
every ``refresh_seconds``: a policy changed by the admin API (on any
replica) is in force everywhere within that time, with no restart and no
extra channel. While the store is away the last policies read stay in force.
"""

from __future__ import annotations

import contextlib
import uuid

from smsgw.domain.errors import Unavailable
from smsgw.domain.policy import UNLIMITED, TenantPolicy
from smsgw.ports import TenantDirectory
from smsgw.supervision import HealthBoard, Supervised


class PolicyCache:
    def __init__(self, tenants: TenantDirectory, refresh_seconds: float = 2.0,
                 board: HealthBoard | None = None) -> None:
        self._tenants = tenants
        self._refresh_seconds = refresh_seconds
        self._policies: dict[uuid.UUID, TenantPolicy] = {}
        # Not critical: stale policies are better than refusing traffic.
        self._loop = Supervised("tenant-policies", self._step, board or HealthBoard(),
                                critical=False)

    def policy(self, tenant_id: uuid.UUID) -> TenantPolicy:
        return self._policies.get(tenant_id, UNLIMITED)

    async def refresh(self) -> None:
        self._policies = await self._tenants.policies()

    async def start(self) -> None:
        # A store away at start is the loop's to retry and report; until then: unlimited.
        with contextlib.suppress(Unavailable):
            await self.refresh()
        await self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def _step(self) -> None:
        await self._loop.pause(self._refresh_seconds)
        await self.refresh()
        self._loop.healthy()
