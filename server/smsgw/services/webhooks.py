"""Signed status webhooks, delivered from the event log.

Each endpoint keeps its own cursor in ``message_events``, so a restart neither
loses nor re-floods deliveries. A dispatcher leases due endpoints the way the
relay leases outbox rows (any number of processes share the work) and gives
each its own task: a slow or dead endpoint holds up only itself, never
sending or other endpoints. Events go out in order, signed per Standard
Webhooks; on failure the endpoint backs off with full jitter (over hours),
``429`` is answered with its ``Retry-After`` and ``410 Gone`` disables it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import random
import secrets
import socket
import time
import uuid
from dataclasses import dataclass

import httpx
from standardwebhooks.webhooks import Webhook

from smsgw import metrics
from smsgw.domain.errors import Unavailable
from smsgw.domain.model import Cursor, StatusEvent
from smsgw.domain.records import Delivery, Endpoint
from smsgw.ports import EventLog, WebhookStore
from smsgw.services.watch import Signal
from smsgw.supervision import HealthBoard, Supervised

log = logging.getLogger(__name__)
_END_OF_TXID = 2**63 - 1


def new_secret() -> str:
    """A Standard Webhooks secret: "whsec_" and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    poll_seconds: float = 1.0
    lease_seconds: float = 60.0
    timeout_seconds: float = 10.0
    events_per_run: int = 100
    max_endpoints: int = 50
    retry_base_seconds: float = 5.0
    retry_cap_seconds: float = 3600.0
    max_failures: int = 30  # about a day of attempts at the cap


@dataclass(frozen=True, slots=True)
class _Answer:
    ok: bool
    http_status: int = 0
    error: str = ""
    retry_after: float | None = None
    duration_ms: int = 0


class WebhookDispatcher:
    def __init__(self, repo: WebhookStore, events: EventLog, signal: Signal,
                 config: WebhookConfig, client: httpx.AsyncClient | None = None,
                 board: HealthBoard | None = None) -> None:
        self._repo = repo
        self._events = events
        self._signal = signal
        self._config = config
        self._client = client or httpx.AsyncClient(timeout=config.timeout_seconds,
                                                   follow_redirects=False)
        self.owner = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._rng = random.Random()  # jitter, not secrets
        self._running: set[asyncio.Task[None]] = set()
        self._loop = Supervised("webhooks", self._lease_step, board or HealthBoard())

    async def start(self) -> None:
        await self._loop.start()

    async def stop(self) -> None:
        """Stops leasing, lets running deliveries finish (up to their timeout). Idempotent."""
        if not self._loop.running:
            return
        await self._loop.stop()
        if self._running:
            await asyncio.wait(self._running, timeout=self._config.timeout_seconds)
        await self._client.aclose()

    async def _lease_step(self) -> None:
        room = self._config.max_endpoints - len(self._running)
        if room > 0:
            for endpoint in await self._repo.lease_due(self.owner, room,
                                                       self._config.lease_seconds):
                task = asyncio.create_task(self._serve(endpoint))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            self._loop.healthy()
        await self._signal.wait(self._config.poll_seconds)

    async def _serve(self, endpoint: Endpoint) -> None:
        unchanged = (self._config.poll_seconds, endpoint.failures, True, "")
        try:
            delay, failures, enabled, reason = await self._deliver_due(endpoint)
        except Unavailable:
            delay, failures, enabled, reason = unchanged
        except Exception:  # a bug here must not stop other endpoints
            log.exception("webhook dispatch failed", extra={"endpoint_id": str(endpoint.id)})
            delay, failures, enabled, reason = unchanged
        with contextlib.suppress(Unavailable):
            await self._repo.release(endpoint.id, self.owner, delay_seconds=delay,
                                     failures=failures, enabled=enabled, reason=reason)

    async def _deliver_due(self, endpoint: Endpoint) -> tuple[float, int, bool, str]:
        """Delivers what is due in order; returns (delay, failures, enabled, reason)."""
        page = await self._events.for_tenant(endpoint.tenant_id, endpoint.cursor,
                                             self._config.events_per_run)
        cursor = endpoint.cursor
        for event in page.events:
            if endpoint.wants(event.status):
                answer = await self._post(endpoint, event)
                await self._repo.record(endpoint.id, _delivery(event, endpoint, answer))
                metrics.WEBHOOKS.labels("delivered" if answer.ok else "failed").inc()
                if not answer.ok:
                    await self._repo.advance(endpoint.id, self.owner, cursor)
                    return self._after_failure(endpoint, answer)
            cursor = event.cursor
        if len(page.events) < self._config.events_per_run:
            cursor = max(cursor, Cursor(page.horizon - 1, _END_OF_TXID))
            delay = self._config.poll_seconds
        else:
            delay = 0.0
        if cursor != endpoint.cursor:
            await self._repo.advance(endpoint.id, self.owner, cursor)
        return delay, 0, True, ""

    def _after_failure(self, endpoint: Endpoint, answer: _Answer) -> tuple[float, int, bool, str]:
        failures = endpoint.failures + 1
        if answer.http_status == 410:
            return 0.0, failures, False, "the endpoint answered 410 Gone"
        if failures >= self._config.max_failures:
            return 0.0, failures, False, f"{failures} deliveries in a row failed"
        ceiling = min(self._config.retry_cap_seconds,
                      self._config.retry_base_seconds * 2 ** (failures - 1))
        delay = self._rng.uniform(0, ceiling)
        if answer.retry_after is not None:
            delay = max(delay, answer.retry_after)
        return delay, failures, True, ""

    async def _post(self, endpoint: Endpoint, event: StatusEvent) -> _Answer:
        event_id = event.cursor.encode()
        now = dt.datetime.now(dt.UTC)
        body = json.dumps(_payload(event, now))
        signature = Webhook(endpoint.secret).sign(event_id, now, body)
        headers = {"content-type": "application/json", "webhook-id": event_id,
                   "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": signature}
        started = time.monotonic()
        try:
            response = await self._client.post(endpoint.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return _Answer(False, error=f"{type(exc).__name__}: {exc}"[:300],
                           duration_ms=_ms(started))
        ok = 200 <= response.status_code < 300
        return _Answer(ok, response.status_code, "" if ok else response.text[:300],
                       _retry_after(response), _ms(started))


def _payload(event: StatusEvent, now: dt.datetime) -> dict[str, object]:
    return {
        "type": "message.status",
        "timestamp": now.isoformat(),
        "data": {
            "cursor": event.cursor.encode(), "message_id": str(event.message_id),
            "status": f"MESSAGE_STATUS_{event.status.name}",
            "previous_status": (f"MESSAGE_STATUS_{event.previous_status.name}"
                                if event.previous_status else None),
            "occur_time": event.occurred_at.isoformat(), "attempt": event.attempt,
            "provider": event.provider, "provider_message_id": event.provider_message_id,
            "error": ({"code": event.error_code, "description": event.error_description}
                      if event.error_code else None),
            "client_reference": event.client_reference,
        },
    }


def _delivery(event: StatusEvent, endpoint: Endpoint, answer: _Answer) -> Delivery:
    return Delivery(event.cursor.encode(), event.message_id, event.status,
                    endpoint.failures + 1, answer.http_status, answer.error, answer.duration_ms,
                    dt.datetime.now(dt.UTC))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if response.status_code != 429 or value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
