"""The composition root: builds every part from Settings and runs them together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from smsgw import metrics, pool
from smsgw.adapters import redis_client
from smsgw.adapters.postgres import migrator
from smsgw.adapters.postgres.database import Database
from smsgw.adapters.postgres.dead_letters import DeadLetterRepository
from smsgw.adapters.postgres.events import EventLog as PostgresEventLog
from smsgw.adapters.postgres.listener import Listener
from smsgw.adapters.postgres.messages import MessageRepository
from smsgw.adapters.postgres.outbox import OutboxRepository
from smsgw.adapters.postgres.receipts import ReceiptRepository
from smsgw.adapters.postgres.tenants import TenantDirectory as PostgresTenantDirectory
from smsgw.adapters.postgres.webhooks import WebhookRepository
from smsgw.adapters.redis_idempotency import RedisIdempotencyCache
from smsgw.adapters.redis_tenant_rate import RedisTenantRateLimiter
from smsgw.api.admin import AdminServicer
from smsgw.api.auth import Authenticator
from smsgw.api.interceptors import TolerantDecoding
from smsgw.api.rest_proxy import RestProxy
from smsgw.api.servicer import ApiConfig, SmsServicer
from smsgw.domain.validation import Limits
from smsgw.http import OpsServer
from smsgw.ports import (
    DeadLetterStore,
    EventLog,
    MessageStore,
    Outbox,
    ReceiptStore,
    TenantDirectory,
    WebhookStore,
)
from smsgw.proto import admin_pb2, admin_pb2_grpc, sms_pb2, sms_pb2_grpc
from smsgw.services.admission import RateGate
from smsgw.services.policies import PolicyCache
from smsgw.services.quiet import QuietHold
from smsgw.services.receipts import ReceiptProcessor
from smsgw.services.relay import Relay, RelayConfig
from smsgw.services.submitter import Submitter
from smsgw.services.watch import Signal, WatchConfig, Watcher
from smsgw.services.webhooks import WebhookConfig, WebhookDispatcher
from smsgw.settings import Settings
from smsgw.supervision import HealthBoard, Supervised

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


@dataclass(frozen=True, slots=True)
class Stores:
    """One adapter per store port; typed as the ports, so mypy checks each adapter."""

    messages: MessageStore
    outbox: Outbox
    events: EventLog
    receipts: ReceiptStore
    webhooks: WebhookStore
    dead_letters: DeadLetterStore
    tenants: TenantDirectory


def postgres_stores(db: Database) -> Stores:
    return Stores(MessageRepository(db), OutboxRepository(db), PostgresEventLog(db),
                  ReceiptRepository(db), WebhookRepository(db), DeadLetterRepository(db),
                  PostgresTenantDirectory(db))


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
    board: HealthBoard = field(default_factory=HealthBoard)
    _health: health_aio.HealthServicer | None = None
    _health_status: Any = None
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
        self.redis = redis_client.connect(s.redis_url)
        stores = self.stores = postgres_stores(self.db)
        self.cache = RedisIdempotencyCache(self.redis, s.idempotency_ttl_hours * 3600)
        self.policies = PolicyCache(stores.tenants, s.policy_refresh_seconds, self.board)
        await self._start(self.policies)
        submitter = Submitter(stores.messages, self.cache, s.submit_batch_max, s.submit_flushers,
                              policy_of=self.policies.policy)
        signal = Signal()
        watcher = Watcher(stores.events, signal,
                          WatchConfig(s.watch_heartbeat_seconds, s.watch_poll_seconds),
                          self._shutting_down)
        listener = Listener(s.database_url, ("smsgw_outbox", "smsgw_events"), self.board)
        listener.subscribe("smsgw_events", signal.fire)
        await self._start(submitter, listener)
        if s.relay_enabled:
            await self._start_relay(listener)
        if s.webhooks_enabled:
            await self._start(WebhookDispatcher(
                stores.webhooks, stores.events, signal, _webhook_config(s), board=self.board))
        servicer = SmsServicer(
            Authenticator(stores.tenants), submitter, stores.messages, watcher,
            ApiConfig(_limits(s),
                      s.stream_chunks_in_flight, s.submit_batch_max), stores.webhooks,
            RateGate(RedisTenantRateLimiter(self.redis), self.policies.policy),
            self.policies.policy)
        await self._start_grpc(servicer, AdminServicer(
            Authenticator(stores.tenants), stores.dead_letters, stores.tenants,
            self.policies.refresh))
        ops = OpsServer(s.http_address, self.readiness, callbacks=self.callbacks)
        await self._start(ops)
        self.http_port = ops.port
        if s.rest_enabled:
            self._rest = RestProxy(s.rest_address, self.grpc_port, self.http_port,
                                   s.data_dir / "rest")
            await self._rest.start()
        await self._start(self._every("outbox-depth", 5.0, self._sample_outbox_depth))
        await self._start(self._every("health", 1.0, self._publish_health, critical=False))

    @property
    def tenants(self) -> TenantDirectory:
        return self.stores.tenants

    async def _start_relay(self, listener: Listener) -> None:
        s = self.settings
        repository = self.stores.receipts
        receipts = ReceiptProcessor(repository, board=self.board)
        await self._start(receipts)
        await self._start(self._every(
            "receipt-timeout", min(30.0, s.receipt_timeout_seconds / 4),
            lambda: _expire(repository, s.receipt_timeout_seconds)))
        dispatcher = pool.build(s, self.redis, self.board)
        for slot in dispatcher.slots.values():
            await slot.port.start(receipts.accept)
            self._stack.append(slot.port)
            if hasattr(slot.port, "handle_callback"):
                self.callbacks[slot.name] = slot.port
        relay = Relay(self.stores.outbox, dispatcher, RelayConfig(
            batch_size=s.relay_batch_size, max_in_flight=s.relay_max_in_flight,
            poll_seconds=s.relay_poll_seconds, lease_seconds=s.relay_lease_seconds,
            max_age_seconds=s.message_max_age_seconds,
            marketing_min_share=s.marketing_min_share), board=self.board,
            hold=QuietHold(self.policies, s.quiet_hours_fallback_zone))
        listener.subscribe("smsgw_outbox", relay.wake)
        await self._start(relay)
        outbox = self.stores.outbox
        await self._start(self._every("validity-sweep", s.validity_sweep_seconds,
                                      lambda: _sweep_expired(outbox)))

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
        for service in (SERVICE_NAME, ADMIN_SERVICE_NAME, ""):
            await health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        self._health = health
        self._health_status = health_pb2.HealthCheckResponse.SERVING

    def _every(self, name: str, interval: float, job: Callable[[], Awaitable[None]], *,
               critical: bool = True) -> Supervised:
        """A supervised poller: the job, then a pause (cut short by stop)."""
        async def step() -> None:
            await job()
            poller.healthy()  # now, not after the pause: readiness recovers at once
            await poller.pause(interval)

        poller = Supervised(name, step, self.board, critical=critical)
        return poller

    async def readiness(self) -> dict[str, tuple[bool, str]]:
        """Each store and each background loop: (ok, what is wrong). Not-critical loops
        (carrier sessions) are reported but never make the gateway unready."""
        postgres, redis = await asyncio.gather(self.db.ping(), self.cache.ping())
        checks = {"postgres": (postgres, "" if postgres else "cannot reach the database"),
                  "redis": (redis, "" if redis else "cannot reach redis")}
        for name, (ok, detail, critical) in self.board.checks().items():
            degraded = not ok and not critical
            checks[f"loop {name}"] = (True, f"degraded: {detail}") if degraded else (ok, detail)
        return checks

    async def _publish_health(self) -> None:
        """Keeps the gRPC health service as honest as /readyz."""
        failing = {name: detail for name, (ok, detail) in (await self.readiness()).items()
                   if not ok}
        status = (health_pb2.HealthCheckResponse.NOT_SERVING if failing
                  else health_pb2.HealthCheckResponse.SERVING)
        if status == self._health_status or self._health is None \
                or self._shutting_down.is_set():
            return
        self._health_status = status
        for service in (SERVICE_NAME, ADMIN_SERVICE_NAME, ""):
            await self._health.set(service, status)
        if failing:
            log.warning("not ready", extra={"failing": failing})
        else:
            log.info("ready again")

    async def _sample_outbox_depth(self) -> None:
        metrics.OUTBOX_DEPTH.set(await self.stores.outbox.depth())

    async def stop(self, grace: float = 5.0) -> None:
        """Stops accepting, ends watch streams in-band, drains, then closes stores."""
        self._shutting_down.set()
        if self._rest is not None:  # REST first: its callers go through the gRPC server
            await self._rest.stop()
            self._rest = None
        if self._server is not None:
            if self._health is not None:
                await self._health.enter_graceful_shutdown()
            await self._server.stop(grace)
            self._server = None
        while self._stack:
            part = self._stack.pop()
            try:
                await (part.close() if isinstance(part, Database) else part.stop())
            except Exception:  # logged, never swallowed, and the rest still stop
                log.exception("stopping a part failed", extra={"part": type(part).__name__})
        if getattr(self, "redis", None) is not None:
            await self.redis.aclose()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)
            self._embedded = None


def _limits(s: Settings) -> Limits:
    return Limits(
        max_segments=s.max_segments, default_region=s.default_region,
        max_schedule_ahead_seconds=s.schedule_max_ahead_seconds,
        max_validity_seconds=s.max_validity_seconds,
        default_validity_seconds={"otp": s.otp_validity_seconds,
                                  "transactional": s.message_max_age_seconds,
                                  "marketing": s.message_max_age_seconds})


def _webhook_config(s: Settings) -> WebhookConfig:
    return WebhookConfig(poll_seconds=s.webhook_poll_seconds,
                         timeout_seconds=s.webhook_timeout_seconds,
                         retry_base_seconds=s.webhook_retry_base_seconds,
                         retry_cap_seconds=s.webhook_retry_cap_seconds)


async def _sweep_expired(outbox: Outbox) -> None:
    """Ends messages whose validity ran out while they waited (every provider closed,
    say), a batch at a time until none is left."""
    while (expired := await outbox.expire_overdue(1000)) > 0:
        log.info("messages expired in the outbox", extra={"expired": expired})
        if expired < 1000:
            return


async def _expire(receipts: ReceiptStore, timeout_seconds: float) -> None:
    if expired := await receipts.expire_unreceipted(timeout_seconds):
        log.info("receipts timed out", extra={"expired": expired})
