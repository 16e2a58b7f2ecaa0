"""The composition root: builds every part from Settings and runs them together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from smsgw import metrics, pool
from smsgw.adapters.postgres import migrator
from smsgw.adapters.postgres.database import Database
from smsgw.adapters.postgres.dead_letters import DeadLetterRepository
from smsgw.adapters.postgres.events import EventLog
from smsgw.adapters.postgres.listener import Listener
from smsgw.adapters.postgres.messages import MessageRepository
from smsgw.adapters.postgres.outbox import OutboxRepository
from smsgw.adapters.postgres.receipts import ReceiptRepository
from smsgw.adapters.postgres.tenants import TenantDirectory
from smsgw.adapters.postgres.webhooks import WebhookRepository
from smsgw.adapters.redis_idempotency import RedisIdempotencyCache
from smsgw.api.admin import AdminServicer
from smsgw.api.auth import Authenticator
from smsgw.api.interceptors import TolerantDecoding
from smsgw.api.rest_proxy import RestProxy
from smsgw.api.servicer import ApiConfig, SmsServicer
from smsgw.domain.errors import Unavailable
from smsgw.domain.validation import Limits
from smsgw.http import OpsServer
from smsgw.proto import admin_pb2, admin_pb2_grpc, sms_pb2, sms_pb2_grpc
from smsgw.services.receipts import ReceiptProcessor
from smsgw.services.relay import Relay, RelayConfig
from smsgw.services.submitter import Submitter
from smsgw.services.watch import Signal, WatchConfig, Watcher
from smsgw.services.webhooks import WebhookConfig, WebhookDispatcher
from smsgw.settings import Settings

if TYPE_CHECKING:
    from smsgw.adapters.embedded import EmbeddedServices

log = logging.getLogger(__name__)
SERVICE_NAME = sms_pb2.DESCRIPTOR.services_by_name["SmsService"].full_name
ADMIN_SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["SmsAdminService"].full_name


async def resolve_stores(settings: Settings) -> tuple[Settings, EmbeddedServices | None]:
    """Fills in embedded Postgres/Redis URLs where none were configured."""
    if settings.database_url and settings.redis_url:
        return settings, None
    from smsgw.adapters.embedded import start_embedded  # noqa: PLC0415 - only for local runs

    return await asyncio.to_thread(start_embedded, settings)


async def apply_migrations(settings: Settings) -> list[str]:
    assert settings.database_url
    db = Database(settings.database_url, pool_size=2)
    await db.open()
    try:
        async with db.connection() as conn:
            done = await migrator.migrate(conn, settings.migrations_dir)
    finally:
        await db.close()
    return [f"{m.version:04d}_{m.name}" for m in done]


@dataclass
class Gateway:
    settings: Settings
    grpc_port: int = 0
    http_port: int = 0
    _stack: list[Any] = field(default_factory=list)
    _embedded: EmbeddedServices | None = None
    _server: grpc.aio.Server | None = None
    _rest: RestProxy | None = None
    _shutting_down: asyncio.Event = field(default_factory=asyncio.Event)
    callbacks: dict[str, Any] = field(default_factory=dict)  # carriers' status callbacks

    async def start(self) -> None:
        self.settings, self._embedded = await resolve_stores(self.settings)
        if self.settings.migrate_on_start:
            for name in await apply_migrations(self.settings):
                log.info("applied migration", extra={"migration": name})
        await self._build()

    async def _build(self) -> None:
        s = self.settings
        assert s.database_url and s.redis_url
        self.db = Database(s.database_url, s.db_pool_size)
        await self.db.open()
        self._stack.append(self.db)
        self.redis = aioredis.from_url(s.redis_url)
        self.tenants = TenantDirectory(self.db)
        messages = MessageRepository(self.db)
        cache = RedisIdempotencyCache(self.redis, s.idempotency_ttl_hours * 3600)
        self.cache = cache
        self.outbox = OutboxRepository(self.db)
        submitter = Submitter(messages, cache, s.submit_batch_max, s.submit_flushers)
        signal = Signal()
        watcher = Watcher(EventLog(self.db), signal,
                          WatchConfig(s.watch_heartbeat_seconds, s.watch_poll_seconds),
                          self._shutting_down)
        listener = Listener(s.database_url, ("smsgw_outbox", "smsgw_events"))
        listener.subscribe("smsgw_events", signal.fire)
        await self._start(submitter, listener)
        if s.relay_enabled:
            await self._start_relay(listener)
        webhooks = WebhookRepository(self.db)
        if s.webhooks_enabled:
            await self._start(WebhookDispatcher(webhooks, EventLog(self.db), signal, WebhookConfig(
                poll_seconds=s.webhook_poll_seconds, timeout_seconds=s.webhook_timeout_seconds,
                retry_base_seconds=s.webhook_retry_base_seconds,
                retry_cap_seconds=s.webhook_retry_cap_seconds)))
        servicer = SmsServicer(
            Authenticator(self.tenants), submitter, messages, watcher,
            ApiConfig(Limits(max_segments=s.max_segments, default_region=s.default_region),
                      s.stream_chunks_in_flight, s.submit_batch_max), webhooks)
        await self._start_grpc(servicer, AdminServicer(
            Authenticator(self.tenants), DeadLetterRepository(self.db)))
        ops = OpsServer(s.http_address, self.readiness, callbacks=self.callbacks)
        await self._start(ops)
        self.http_port = ops.port
        if s.rest_enabled:
            self._rest = RestProxy(s.rest_address, self.grpc_port, self.http_port,
                                   s.data_dir / "rest")
            await self._rest.start()
        self._stack.append(_Poller(self._sample_outbox_depth, 5.0))
        await self._stack[-1].start()

    async def _start_relay(self, listener: Listener) -> None:
        s = self.settings
        repository = ReceiptRepository(self.db)
        receipts = ReceiptProcessor(repository)
        await self._start(receipts)
        sweep = _Poller(lambda: _expire(repository, s.receipt_timeout_seconds),
                        min(30.0, s.receipt_timeout_seconds / 4))
        await self._start(sweep)
        dispatcher = pool.build(s, self.redis)
        for slot in dispatcher.slots.values():
            await slot.port.start(receipts.accept)
            self._stack.append(slot.port)
            if hasattr(slot.port, "handle_callback"):
                self.callbacks[slot.name] = slot.port
        relay = Relay(self.outbox, dispatcher, RelayConfig(
            batch_size=s.relay_batch_size, max_in_flight=s.relay_max_in_flight,
            poll_seconds=s.relay_poll_seconds, lease_seconds=s.relay_lease_seconds,
            max_age_seconds=s.message_max_age_seconds))
        listener.subscribe("smsgw_outbox", relay.wake)
        await self._start(relay)

    async def _start(self, *parts: Any) -> None:
        for part in parts:
            await part.start()
            self._stack.append(part)

    async def _start_grpc(self, servicer: SmsServicer, admin: AdminServicer) -> None:
        tolerant = TolerantDecoding((f"/{SERVICE_NAME}/", f"/{ADMIN_SERVICE_NAME}/"))
        server = grpc.aio.server(interceptors=[tolerant], options=[
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 60_000),
        ])
        sms_pb2_grpc.add_SmsServiceServicer_to_server(servicer, server)
        admin_pb2_grpc.add_SmsAdminServiceServicer_to_server(admin, server)
        health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, ADMIN_SERVICE_NAME, reflection.SERVICE_NAME,
             health_pb2.DESCRIPTOR.services_by_name["Health"].full_name), server)
        self.grpc_port = server.add_insecure_port(self.settings.grpc_address)
        await server.start()
        await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        await health.set("", health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        self._health = health

    async def readiness(self) -> dict[str, bool]:
        return {"postgres": await self.db.ping(), "redis": await self.cache.ping()}

    async def _sample_outbox_depth(self) -> None:
        with contextlib.suppress(Unavailable):
            metrics.OUTBOX_DEPTH.set(await self.outbox.depth())

    async def stop(self, grace: float = 5.0) -> None:
        """Stops accepting, ends watch streams in-band, drains, then closes stores."""
        self._shutting_down.set()
        if self._rest is not None:  # REST first: its callers go through the gRPC server
            await self._rest.stop()
            self._rest = None
        if self._server is not None:
            await self._health.enter_graceful_shutdown()
            await self._server.stop(grace)
            self._server = None
        while self._stack:
            part = self._stack.pop()
            with contextlib.suppress(Exception):
                await (part.close() if isinstance(part, Database) else part.stop())
        if getattr(self, "redis", None) is not None:
            await self.redis.aclose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None


async def _expire(receipts: ReceiptRepository, timeout_seconds: float) -> None:
    with contextlib.suppress(Unavailable):
        if expired := await receipts.expire_unreceipted(timeout_seconds):
            log.info("receipts timed out", extra={"expired": expired})


class _Poller:
    """Runs a coroutine every few seconds (gauges that need a query)."""

    def __init__(self, job: Any, interval: float) -> None:
        self._job, self._interval = job, interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._job()
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
