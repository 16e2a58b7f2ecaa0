"""API-key authentication, with a short-lived cache so the hot path skips the database."""

from __future__ import annotations

import time

import grpc

from smsgw.domain.errors import PermissionDenied, Unauthenticated
from smsgw.domain.model import Tenant
from smsgw.ports import TenantDirectory

_BEARER = "bearer "


class Authenticator:
    def __init__(self, tenants: TenantDirectory, cache_seconds: float = 30.0) -> None:
        self._tenants = tenants
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[Tenant, float]] = {}

    async def tenant(self, context: grpc.aio.ServicerContext[object, object],
                     scope: str = "send") -> Tenant:
        tenant = await self._by_key(_bearer_key(context.invocation_metadata() or ()))
        if scope not in tenant.scopes:
            raise PermissionDenied(f"this API key lacks the '{scope}' scope")
        return tenant

    async def _by_key(self, key: str) -> Tenant:
        cached = self._cache.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        tenant = await self._tenants.by_key(key)
        if tenant is None:
            raise Unauthenticated("the API key is not valid")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (tenant, time.monotonic() + self._ttl)
        return tenant


def _bearer_key(metadata: object) -> str:
    for item in metadata:  # type: ignore[attr-defined]
        if item.key == "authorization":
            value = item.value if isinstance(item.value, str) else item.value.decode()
            if value.lower().startswith(_BEARER) and value[len(_BEARER):].strip():
                return str(value[len(_BEARER):].strip())
            break
    raise Unauthenticated("send an API key as 'authorization: Bearer <key>'")
