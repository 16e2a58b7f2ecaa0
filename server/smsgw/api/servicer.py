"""SmsService: each RPC authenticates, checks its input, and calls one use case."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from smsgw import metrics
from smsgw.api import convert, limits, requests
from smsgw.api.auth import Authenticator
from smsgw.api.boundary import bidi_stream, server_stream, unary
from smsgw.api.errors import rpc_status
from smsgw.domain import errors
from smsgw.domain.model import Message, PageRequest, Submission, SubmitOutcome
from smsgw.domain.policy import PolicyOf, unlimited
from smsgw.domain.status import MessageStatus
from smsgw.domain.validation import Limits, validate
from smsgw.ports import MessageStore, WebhookStore
from smsgw.proto import sms_pb2 as pb
from smsgw.proto import sms_pb2_grpc
from smsgw.services.admission import RateGate
from smsgw.services.submitter import Submitter
from smsgw.services.watch import End, Heartbeat, Watcher
from smsgw.services.webhooks import new_secret

Context = grpc.aio.ServicerContext[Any, Any]
Results = asyncio.Future[list[pb.SendMessageResult]]
MAX_BATCH = 1000  # items per BatchSendMessagesRequest and per SendMessagesRequest chunk


@dataclass(frozen=True, slots=True)
class ApiConfig:
    limits: Limits
    chunks_in_flight: int = 4
    batch_max: int = 1000


class SmsServicer(sms_pb2_grpc.SmsServiceServicer):
    def __init__(self, auth: Authenticator, submitter: Submitter, messages: MessageStore,
                 watcher: Watcher, config: ApiConfig, webhooks: WebhookStore,
                 gate: RateGate | None = None, policy_of: PolicyOf | None = None) -> None:
        self._policy_of = policy_of or unlimited
        self._gate = gate or RateGate(None, self._policy_of)
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
            await self._gate.check(tenant.id)
        except (errors.ValidationFailed, errors.RateLimited):
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
        results = await self._submit_chunk(tenant.id, 0, request.requests, rate_checked=False)
        return pb.BatchSendMessagesResponse(results=results)

    @unary
    async def GetUsage(self, request: pb.GetUsageRequest, context: Context) -> pb.Usage:
        tenant = await self._auth.tenant(context)
        return limits.usage(await self._messages.usage(tenant.id), self._policy_of(tenant.id))

    @bidi_stream
    async def SendMessages(self, request_iterator: AsyncIterator[pb.SendMessagesRequest],
                           context: Context) -> AsyncGenerator[pb.SendMessagesResponse, None]:
        tenant = await self._auth.tenant(context)
        # Bounded: when it is full the reader stops reading, and gRPC flow
        # control pushes back on the client instead of us buffering its backlog.
        chunks: asyncio.Queue[Results | None] = asyncio.Queue(
            maxsize=self._config.chunks_in_flight)
        reader = asyncio.create_task(self._read_chunks(tenant.id, request_iterator, chunks))
        try:
            while (chunk := await chunks.get()) is not None:
                yield pb.SendMessagesResponse(results=await chunk)
        finally:
            reader.cancel()
            await asyncio.wait([reader])  # unlike `await reader`, keeps our own cancellation
            while not chunks.empty():
                _abandon(chunks.get_nowait())

    async def _read_chunks(self, tenant: uuid.UUID,
                           incoming: AsyncIterator[pb.SendMessagesRequest],
                           chunks: asyncio.Queue[Results | None]) -> None:
        """Queues every chunk's results in order, then None. A failure to read is queued
        too, so the stream answers the chunks before it and then ends with its status."""
        index = 0
        try:
            async for request in incoming:
                if len(request.items) <= MAX_BATCH:
                    # Read on at the tenant's rate: while this waits, flow control
                    # holds the client back; nothing is refused for the rate.
                    await self._gate.wait(tenant, len(request.items))
                await self._queue_chunk(tenant, index, request.items, chunks)
                index += len(request.items)
        except Exception as exc:
            await chunks.put(_failed(exc))
        # Not in a `finally`: a cancelled reader must not wait on a queue nobody reads.
        await chunks.put(None)

    async def _queue_chunk(self, tenant: uuid.UUID, first_index: int,
                           items: Sequence[pb.SendMessageRequest],
                           chunks: asyncio.Queue[Results | None]) -> None:
        if len(items) > MAX_BATCH:
            await chunks.put(_settled(_refused(first_index, items)))
            return
        for start in range(0, len(items), self._config.batch_max):
            part = items[start:start + self._config.batch_max]
            chunk = asyncio.create_task(self._submit_chunk(tenant, first_index + start, part,
                                                           rate_checked=True))
            try:
                await chunks.put(chunk)
            except asyncio.CancelledError:  # the stream ended while the queue was full
                _abandon(chunk)
                raise

    async def _submit_chunk(self, tenant: uuid.UUID, first_index: int,
                            items: Sequence[pb.SendMessageRequest], *,
                            rate_checked: bool) -> list[pb.SendMessageResult]:
        """Validates and stores one chunk; every item gets its own result. Unless the
        stream already waited for them, the valid items over the rate are refused."""
        results: list[pb.SendMessageResult | None] = [None] * len(items)
        valid: list[tuple[int, Submission]] = []
        for offset, item in enumerate(items):
            try:
                valid.append((offset, validate(convert.send_request(item),
                                               self._config.limits)))
            except errors.ValidationFailed as exc:
                metrics.SUBMITTED.labels("rejected").inc()
                results[offset] = _result(first_index + offset, item, error=exc)
        if valid and not rate_checked:
            granted, refusal = await self._gate.split(tenant, len(valid))
            for offset, _ in valid[granted:]:
                metrics.SUBMITTED.labels("rejected").inc()
                results[offset] = _result(first_index + offset, items[offset], error=refusal)
            valid = valid[:granted]
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
            convert.to_datetime(request.create_time_start, "create_time_start")
            if request.HasField("create_time_start") else None,
            convert.to_datetime(request.create_time_end, "create_time_end")
            if request.HasField("create_time_end") else None,
            self._config.limits.default_region, request.scheduled_only)
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
        deleted = await self._webhooks.delete(tenant.id, requests.uuid_value(
            request.id, "id", "must be a webhook endpoint id (a UUID)"))
        if deleted is None:
            raise errors.NotFound(f"webhook endpoint {request.id} not found")
        return convert.webhook_endpoint(deleted)

    @unary
    async def ListWebhookDeliveries(self, request: pb.ListWebhookDeliveriesRequest,
                                    context: Context) -> pb.ListWebhookDeliveriesResponse:
        tenant = await self._auth.tenant(context)
        endpoint = requests.uuid_value(request.endpoint_id, "endpoint_id",
                                       "must be a webhook endpoint id (a UUID)")
        found = await self._webhooks.deliveries(tenant.id, endpoint,
                                                requests.page_size(request.page_size, 50, 500))
        return pb.ListWebhookDeliveriesResponse(
            deliveries=[convert.webhook_delivery(d) for d in found])

    @server_stream
    async def WatchMessageStatus(
        self, request: pb.WatchMessageStatusRequest, context: Context,
    ) -> AsyncGenerator[pb.WatchMessageStatusResponse, None]:
        tenant = await self._auth.tenant(context)
        ids = requests.message_ids(request.message_ids)
        after = requests.cursor(request.after_cursor)
        items = await self._watcher.watch(tenant.id, ids, after)
        metrics.WATCH_STREAMS.inc()
        try:
            async for item in items:
                yield _watch_response(item)
        finally:
            metrics.WATCH_STREAMS.dec()


def _settled(results: list[pb.SendMessageResult]) -> Results:
    future: Results = asyncio.get_running_loop().create_future()
    future.set_result(results)
    return future


def _failed(error: Exception) -> Results:
    future: Results = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future


def _refused(first_index: int,
             items: Sequence[pb.SendMessageRequest]) -> list[pb.SendMessageResult]:
    """A chunk over the limit: every item gets the same error result and none is stored."""
    metrics.SUBMITTED.labels("rejected").inc(len(items))
    error = rpc_status(errors.ValidationFailed.single(
        "items", f"at most {MAX_BATCH} items per request"))
    return [pb.SendMessageResult(index=first_index + offset,
                                 client_reference=item.client_reference, error=error)
            for offset, item in enumerate(items)]


def _abandon(chunk: Results | None) -> None:
    """A chunk a stream that ended will not answer: its work stops, its error is seen."""
    if chunk is not None:
        chunk.add_done_callback(_seen)
        chunk.cancel()


def _seen(chunk: Results) -> None:
    if not chunk.cancelled():
        chunk.exception()


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
