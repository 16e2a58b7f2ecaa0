"""SmsAdminService: the dead-letter queue and tenant limits, for keys with the 'admin' scope."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from smsgw.api import convert, limits, requests
from smsgw.api.auth import Authenticator
from smsgw.api.boundary import unary
from smsgw.domain.errors import NotFound, ValidationFailed
from smsgw.domain.model import Tenant
from smsgw.domain.policy import UNLIMITED
from smsgw.domain.records import DeadLetter, DeadLetterFilter
from smsgw.ports import DeadLetterStore, TenantDirectory
from smsgw.proto import admin_pb2 as pb
from smsgw.proto import admin_pb2_grpc, sms_pb2

Context = grpc.aio.ServicerContext[Any, Any]
DEFAULT_PAGE, MAX_PAGE, MAX_REPLAY = 50, 500, 1000


class AdminServicer(admin_pb2_grpc.SmsAdminServiceServicer):
    def __init__(self, auth: Authenticator, dead_letters: DeadLetterStore,
                 tenants: TenantDirectory,
                 policies_changed: Callable[[], Awaitable[None]] | None = None) -> None:
        self._auth = auth
        self._dead_letters = dead_letters
        self._tenants = tenants
        self._policies_changed = policies_changed

    @unary
    async def GetTenantLimits(self, request: pb.GetTenantLimitsRequest,
                              context: Context) -> pb.TenantLimits:
        await self._auth.tenant(context, scope="admin")
        tenant = await self._tenant(request.tenant, "tenant")
        policy = (await self._tenants.policies()).get(tenant.id, UNLIMITED)
        return limits.tenant_limits(tenant, policy)

    @unary
    async def SetTenantLimits(self, request: pb.SetTenantLimitsRequest,
                              context: Context) -> pb.TenantLimits:
        """Stored at once; every replica's policy cache has it within its refresh
        interval, this one's at once."""
        await self._auth.tenant(context, scope="admin")
        # The path names the tenant (REST: /v1/admin/tenants/{tenant}/limits).
        named = request.tenant or request.limits.tenant
        tenant = await self._tenant(named, "tenant")
        current = (await self._tenants.policies()).get(tenant.id, UNLIMITED)
        policy = limits.updated_policy(current, request.limits, list(request.update_mask.paths))
        if not await self._tenants.set_policy(tenant.id, policy):
            raise NotFound(f"tenant {named!r} not found")
        if self._policies_changed is not None:
            await self._policies_changed()
        return limits.tenant_limits(tenant, policy)

    async def _tenant(self, name_or_id: str, field: str) -> Tenant:
        if not name_or_id:
            raise ValidationFailed.single(field, "is required: a tenant's name or id")
        tenant = await self._tenants.find(name_or_id)
        if tenant is None:
            raise NotFound(f"tenant {name_or_id!r} not found")
        return tenant

    @unary
    async def ListDeadLetters(self, request: pb.ListDeadLettersRequest,
                              context: Context) -> pb.ListDeadLettersResponse:
        await self._auth.tenant(context, scope="admin")
        where = _filter(request.filter)
        size = requests.page_size(request.page_size, DEFAULT_PAGE, MAX_PAGE)
        after = _page_token(request.page_token) if request.page_token else None
        found = await self._dead_letters.find(where, size + 1, after)
        response = pb.ListDeadLettersResponse(
            dead_letters=[_dead_letter(d) for d in found[:size]])
        if len(found) > size:
            last = found[size - 1]
            response.next_page_token = base64.urlsafe_b64encode(json.dumps(
                [last.dead_at.isoformat(), str(last.message_id)]).encode()).decode()
        return response

    @unary
    async def ReplayDeadLetters(self, request: pb.ReplayDeadLettersRequest,
                                context: Context) -> pb.ReplayDeadLettersResponse:
        await self._auth.tenant(context, scope="admin")
        if len(request.message_ids) > MAX_REPLAY:
            raise ValidationFailed.single("message_ids", f"at most {MAX_REPLAY} per call")
        if request.message_ids:
            ids = [_uuid(text, f"message_ids[{n}]") for n, text in enumerate(request.message_ids)]
        else:
            where = _filter(request.filter)
            ids = [d.message_id for d in await self._dead_letters.find(where, MAX_REPLAY)]
        replayed = await self._dead_letters.replay(ids)
        return pb.ReplayDeadLettersResponse(results=[pb.ReplayResult(
            message_id=str(r.message_id), replay_message_id=str(r.replay_message_id),
            already_replayed=r.already_replayed) for r in replayed])


def _filter(where: pb.DeadLetterFilter) -> DeadLetterFilter:
    tenant = _uuid(where.tenant_id, "filter.tenant_id") if where.tenant_id else None
    return DeadLetterFilter(tenant, requests.plain_text(where.provider, "filter.provider"),
                            requests.plain_text(where.error_code, "filter.error_code"),
                            where.pending_only)


def _uuid(text: str, field: str) -> uuid.UUID:
    return requests.uuid_value(text, field, "is not a UUID")


def _page_token(token: str) -> tuple[dt.datetime, uuid.UUID]:
    data = requests.token_data(token)
    if not isinstance(data, list) or len(data) != 2:
        raise ValidationFailed.single("page_token", requests.FOREIGN_PAGE)
    return requests.page_position(data[0], data[1])


def _dead_letter(d: DeadLetter) -> pb.DeadLetter:
    r = d.request
    out = pb.DeadLetter(
        message_id=str(d.message_id), tenant_id=str(d.tenant_id), provider=d.provider,
        route=d.route, dead_time=convert.timestamp(d.dead_at),
        replay_message_id=str(d.replay_message_id or ""),
        replay_time=convert.timestamp(d.replayed_at),
        error=sms_pb2.Error(code=d.error_code, description=d.error_description),
        request=sms_pb2.SendMessageRequest(
            to=r.get("to", ""), body=r.get("body", ""), sender=r.get("sender", ""),
            client_reference=r.get("client_reference", ""), metadata=r.get("metadata") or {},
            idempotency_key=r.get("idempotency_key", ""),
            traffic_class=f"TRAFFIC_CLASS_{r.get('traffic_class', 'transactional').upper()}"),
        attempts=[pb.AttemptError(
            attempt=a.get("attempt", 0), provider=a.get("provider", ""),
            error=sms_pb2.Error(code=a.get("error_code", ""),
                                description=a.get("error_description", "")),
            occur_time=convert.timestamp(dt.datetime.fromisoformat(a["occurred_at"]))
            if a.get("occurred_at") else None) for a in d.attempts])
    if not d.replay_message_id:
        out.replay_message_id = ""
    return out
