"""SmsService: each RPC authenticates, checks its input, and calls one use case."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

from smsgw import metrics
from smsgw.api import convert, requests
from smsgw.api.auth import Authenticator
from smsgw.api.errors import grpc_code, rpc_status, trailing_metadata
from smsgw.api.interceptors import Malformed
from smsgw.domain import errors
from smsgw.domain.model import Message, PageRequest, Submission, SubmitOutcome
from smsgw.domain.status import MessageStatus
from smsgw.domain.validation import Limits, validate
from smsgw.ports import MessageStore, WebhookStore
from smsgw.proto import sms_pb2 as pb
from smsgw.proto import sms_pb2_grpc
from smsgw.services.submitter import Submitter
from smsgw.services.watch import End, Heartbeat, Watcher
from smsgw.services.webhooks import new_secret

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
R = TypeVar("R")
MAX_BATCH = 1000


async def _abort(context: Context, exc: Exception) -> None:
    if not isinstance(exc, errors.SmsError):
        log.exception("unexpected error in RPC", exc_info=exc)
        exc = errors.SmsError("internal error")
    status = rpc_status(exc)
    await context.abort(grpc_code(exc), status.message, trailing_metadata(status))


def unary(handler: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """Translates every error of a unary handler at the edge, once."""

    @functools.wraps(handler)
    async def wrapper(self: Any, request: Any, context: Context) -> R:
        try:
            if isinstance(request, Malformed):
                raise request.error()
            return await handler(self, request, context)
        except (errors.SmsError, Exception) as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            await _abort(context, exc)
            raise AssertionError("unreachable") from exc  # abort raises

    return wrapper


@dataclass(frozen=True, slots=True)
class ApiConfig:
    limits: Limits
    chunks_in_flight: int = 4
    batch_max: int = 1000


class SmsServicer(sms_pb2_grpc.SmsServiceServicer):
    def __init__(self, auth: Authenticator, submitter: Submitter, messages: MessageStore,
                 watcher: Watcher, config: ApiConfig, webhooks: WebhookStore) -> None:
        self._webhooks = webhooks
        self._auth = auth
        self._submitter = submitter
        self._messages = messages
        self._watcher = watcher
        self._config = config

    @unary
    async def SendMessage(self, request: pb.SendMessageRequest, context: Context) -> pb.Message:
        tenant = await self._auth.tenant(context)
        try:
            submission = validate(convert.send_request(request), self._config.limits)
        except errors.ValidationFailed:
            metrics.SUBMITTED.labels("rejected").inc()
            raise
        outcome = await self._submitter.submit(tenant.id, submission)
        _count(outcome)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.message is not None
        return convert.message(outcome.message)

    @unary
    async def BatchSendMessages(self, request: pb.BatchSendMessagesRequest,
                                context: Context) -> pb.BatchSendMessagesResponse:
        tenant = await self._auth.tenant(context)
        if not request.requests:
            raise errors.ValidationFailed.single("requests", "at least one item is required")
        if len(request.requests) > MAX_BATCH:
            raise errors.ValidationFailed.single("requests", f"at most {MAX_BATCH} items")
        results = await self._submit_chunk(tenant.id, 0, request.requests)
        return pb.BatchSendMessagesResponse(results=results)

    async def SendMessages(self, request_iterator: AsyncIterator[pb.SendMessagesRequest],
                           context: Context) -> AsyncIterator[pb.SendMessagesResponse]:
        try:
            tenant = await self._auth.tenant(context)
        except errors.SmsError as exc:
            await _abort(context, exc)
            return
        # Bounded: when it is full the reader stops reading, and gRPC flow
        # control pushes back on the client instead of us buffering its backlog.
        chunks: asyncio.Queue[asyncio.Task[list[pb.SendMessageResult]] | None] = asyncio.Queue(
            maxsize=self._config.chunks_in_flight)
        reader = asyncio.create_task(self._read_chunks(tenant.id, request_iterator, chunks))
        try:
            while (chunk := await chunks.get()) is not None:
                yield pb.SendMessagesResponse(results=await chunk)
        except Exception as exc:  # the stream ends with a status, never hangs or leaks
            await _abort(context, exc)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read_chunks(
        self, tenant: uuid.UUID, incoming: AsyncIterator[pb.SendMessagesRequest],
        chunks: asyncio.Queue[asyncio.Task[list[pb.SendMessageResult]] | None],
    ) -> None:
        index = 0
        try:
            async for request in incoming:
                if isinstance(request, Malformed):
                    await chunks.put(asyncio.create_task(_raise(request.error())))
                    return
                for start in range(0, len(request.items), self._config.batch_max):
                    items = request.items[start:start + self._config.batch_max]
                    await chunks.put(asyncio.create_task(
                        self._submit_chunk(tenant, index, items)))
                    index += len(items)
        finally:
            await chunks.put(None)

    async def _submit_chunk(self, tenant: uuid.UUID, first_index: int,
                            items: Sequence[pb.SendMessageRequest]) -> list[pb.SendMessageResult]:
        """Validates and stores one chunk; every item gets its own result."""
        results: list[pb.SendMessageResult | None] = [None] * len(items)
        valid: list[tuple[int, Submission]] = []
        for offset, item in enumerate(items):
            try:
                valid.append((offset, validate(convert.send_request(item),
                                               self._config.limits)))
            except errors.ValidationFailed as exc:
                metrics.SUBMITTED.labels("rejected").inc()
                results[offset] = _result(first_index + offset, item, error=exc)
        if valid:
            try:
                outcomes = await self._submitter.submit_many(tenant, [s for _, s in valid])
            except errors.SmsError as exc:
                outcomes = [SubmitOutcome(None, exc)] * len(valid)
            for (offset, _), outcome in zip(valid, outcomes, strict=True):
                _count(outcome)
                results[offset] = _result(first_index + offset, items[offset],
                                          message=outcome.message, error=outcome.error)
        return [r for r in results if r is not None]

    @unary
    async def GetMessage(self, request: pb.GetMessageRequest, context: Context) -> pb.Message:
        tenant = await self._auth.tenant(context)
        message_id = requests.message_id(request.id)
        found = await self._messages.get_many(tenant.id, [message_id])
        if not found:
            raise errors.NotFound(f"message {request.id} not found")
        return convert.message(found[0])

    @unary
    async def ListMessages(self, request: pb.ListMessagesRequest,
                           context: Context) -> pb.ListMessagesResponse:
        tenant = await self._auth.tenant(context)
        where = requests.message_filter(
            request.statuses, request.to,
            convert.to_datetime(request.create_time_start)
            if request.HasField("create_time_start") else None,
            convert.to_datetime(request.create_time_end)
            if request.HasField("create_time_end") else None,
            self._config.limits.default_region)
        page = requests.page(request.page_size, request.page_token, where)
        # One row more than the page: whether it exists decides next_page_token.
        rows = await self._messages.list(tenant.id, where,
                                         PageRequest(page.size + 1, page.after))
        response = pb.ListMessagesResponse(messages=[convert.message(m)
                                                     for m in rows[:page.size]])
        if len(rows) > page.size:
            last = rows[page.size - 1]
            response.next_page_token = requests.next_page_token(last.created_at, last.id, where)
        return response

    @unary
    async def CancelMessage(self, request: pb.CancelMessageRequest,
                            context: Context) -> pb.Message:
        tenant = await self._auth.tenant(context)
        message_id = requests.message_id(request.id)
        canceled = await self._messages.cancel(tenant.id, message_id)
        if canceled is not None:
            return convert.message(canceled)
        found = await self._messages.get_many(tenant.id, [message_id])
        if not found:
            raise errors.NotFound(f"message {request.id} not found")
        if found[0].status is MessageStatus.CANCELED:
            return convert.message(found[0])
        raise errors.NotCancelable(
            f"message is {found[0].status.name}; only a message not yet handed to a provider "
            "can be canceled")

    @unary
    async def CreateWebhookEndpoint(self, request: pb.CreateWebhookEndpointRequest,
                                    context: Context) -> pb.WebhookEndpoint:
        tenant = await self._auth.tenant(context)
        url = requests.webhook_url(request.url)
        endpoint = await self._webhooks.create(tenant.id, url,
                                               requests.statuses(request.statuses), new_secret())
        return convert.webhook_endpoint(endpoint, with_secret=True)

    @unary
    async def ListWebhookEndpoints(self, request: pb.ListWebhookEndpointsRequest,
                                   context: Context) -> pb.ListWebhookEndpointsResponse:
        tenant = await self._auth.tenant(context)
        return pb.ListWebhookEndpointsResponse(endpoints=[
            convert.webhook_endpoint(e) for e in await self._webhooks.for_tenant(tenant.id)])

    @unary
    async def DeleteWebhookEndpoint(self, request: pb.DeleteWebhookEndpointRequest,
                                    context: Context) -> pb.WebhookEndpoint:
        tenant = await self._auth.tenant(context)
        deleted = await self._webhooks.delete(tenant.id, requests.message_id(request.id))
        if deleted is None:
            raise errors.NotFound(f"webhook endpoint {request.id} not found")
        return convert.webhook_endpoint(deleted)

    @unary
    async def ListWebhookDeliveries(self, request: pb.ListWebhookDeliveriesRequest,
                                    context: Context) -> pb.ListWebhookDeliveriesResponse:
        tenant = await self._auth.tenant(context)
        endpoint = requests.message_id(request.endpoint_id, "endpoint_id")
        if request.page_size < 0:
            raise errors.ValidationFailed.single("page_size", "must not be negative")
        found = await self._webhooks.deliveries(tenant.id, endpoint,
                                                min(request.page_size or 50, 500))
        return pb.ListWebhookDeliveriesResponse(
            deliveries=[convert.webhook_delivery(d) for d in found])

    async def WatchMessageStatus(self, request: pb.WatchMessageStatusRequest,
                                 context: Context) -> AsyncIterator[pb.WatchMessageStatusResponse]:
        try:
            if isinstance(request, Malformed):
                raise request.error()
            tenant = await self._auth.tenant(context)
            ids = requests.message_ids(request.message_ids)
            after = requests.cursor(request.after_cursor)
            items = await self._watcher.watch(tenant.id, ids, after)
        except Exception as exc:
            await _abort(context, exc)
            return
        metrics.WATCH_STREAMS.inc()
        try:
            async for item in items:
                yield _watch_response(item)
        except Exception as exc:
            await _abort(context, exc)
        finally:
            metrics.WATCH_STREAMS.dec()


async def _raise(error: errors.SmsError) -> list[pb.SendMessageResult]:
    raise error


def _watch_response(item: object) -> pb.WatchMessageStatusResponse:
    if isinstance(item, Heartbeat):
        return pb.WatchMessageStatusResponse(heartbeat=pb.Heartbeat(
            cursor=item.cursor.encode(), server_time=convert.now()))
    if isinstance(item, End):
        reason = (pb.WATCH_END_REASON_ALL_FINAL if item.all_final
                  else pb.WATCH_END_REASON_SERVER_SHUTDOWN)
        return pb.WatchMessageStatusResponse(end=pb.WatchEnd(reason=reason,
                                                             cursor=item.cursor.encode()))
    return pb.WatchMessageStatusResponse(event=convert.status_event(item))  # type: ignore[arg-type]


def _result(index: int, item: pb.SendMessageRequest, *, message: Message | None = None,
            error: Exception | None = None) -> pb.SendMessageResult:
    if error is None and message is not None:
        return pb.SendMessageResult(index=index, client_reference=item.client_reference,
                                    message=convert.message(message))
    sms_error = error if isinstance(error, errors.SmsError) else errors.SmsError("internal error")
    return pb.SendMessageResult(index=index, client_reference=item.client_reference,
                                error=rpc_status(sms_error))


def _count(outcome: SubmitOutcome) -> None:
    label = "rejected" if outcome.error else "replayed" if outcome.replayed else "accepted"
    metrics.SUBMITTED.labels(label).inc()
