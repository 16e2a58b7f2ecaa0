"""The asyncio client."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc

from ghasi_sms_client._errors import SmsError
from ghasi_sms_client._proto import sms_pb2 as pb
from ghasi_sms_client._proto import sms_pb2_grpc as pb_grpc
from ghasi_sms_client._requests import (
    ItemRequests,
    SendItem,
    TrafficClassLike,
    auth_metadata,
    send_request,
)
from ghasi_sms_client._retry import RetryPolicy
from ghasi_sms_client._watch import WatchPosition

T = TypeVar("T")
MAX_CHUNK = 1000


class AsyncSmsClient:
    """One client per process and gateway; safe to share between tasks."""

    def __init__(self, target: str, api_key: str, *, timeout: float = 10.0,
                 retry: RetryPolicy | None = None,
                 channel: grpc.aio.Channel | None = None) -> None:
        self._channel = channel or grpc.aio.insecure_channel(target)
        self._owns_channel = channel is None
        self._stub = pb_grpc.SmsServiceStub(self._channel)
        self._metadata = auth_metadata(api_key)
        self._timeout = timeout
        self._retry = retry or RetryPolicy()

    async def __aenter__(self) -> AsyncSmsClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close(grace=None)

    async def send(self, to: str, body: str, *, sender: str = "", client_reference: str = "",
                   metadata: Mapping[str, str] | None = None, idempotency_key: str | None = None,
                   traffic_class: TrafficClassLike | None = None,
                   send_time: dt.datetime | None = None, expire_time: dt.datetime | None = None,
                   ttl: dt.timedelta | None = None,
                   timeout: float | None = None) -> pb.Message:
        """Accepts one message; it is durable (and never sent twice) once this returns.

        ``traffic_class`` (``pb.TRAFFIC_CLASS_OTP`` or ``"otp"``, ``"transactional"``,
        ``"marketing"``) picks the priority lane and may pick the route: say ``"otp"``
        for login codes so a marketing backlog never delays them. Unset means
        transactional.

        ``send_time`` (timezone-aware) schedules the send instead of sending now: the
        gateway keeps it, across restarts, until then, and ``cancel`` works until it
        leaves. ``expire_time`` or ``ttl`` (from ``send_time``, or from now) bounds its
        validity: not handed to a provider by then, it ends EXPIRED rather than arrive
        late; unset, the traffic class's default applies (OTP: 10 minutes). Set at most
        one of the two. Naive datetimes raise ValueError, as would both validity options.

        The idempotency key (a new UUID unless given) is fixed before the first attempt,
        so a retry after a lost answer returns the same message.
        """
        request = send_request(to, body, sender=sender, client_reference=client_reference,
                               metadata=metadata, idempotency_key=idempotency_key,
                               traffic_class=traffic_class, send_time=send_time,
                               expire_time=expire_time, ttl=ttl)
        return await self._unary(self._stub.SendMessage, request, timeout)

    async def get(self, message_id: str, *, timeout: float | None = None) -> pb.Message:
        return await self._unary(self._stub.GetMessage, pb.GetMessageRequest(id=message_id),
                                 timeout)

    async def cancel(self, message_id: str, *, timeout: float | None = None) -> pb.Message:
        return await self._unary(self._stub.CancelMessage,
                                 pb.CancelMessageRequest(id=message_id), timeout)

    async def usage(self, *, timeout: float | None = None) -> pb.Usage:
        """Today's and this month's segments against the quotas, and the rate limit."""
        return await self._unary(self._stub.GetUsage, pb.GetUsageRequest(), timeout)

    async def list(self, *, statuses: Sequence[pb.MessageStatus] = (), to: str = "",
                   scheduled_only: bool = False,
                   page_size: int = 100) -> AsyncIterator[pb.Message]:
        """Every matching message, newest first, fetching pages as it goes.

        ``scheduled_only`` keeps only the messages still waiting for their
        ``send_time``: the ones a ``cancel`` can still stop.
        """
        token = ""
        while True:
            page: pb.ListMessagesResponse = await self._unary(
                self._stub.ListMessages, pb.ListMessagesRequest(
                    statuses=list(statuses), to=to, scheduled_only=scheduled_only,
                    page_size=page_size, page_token=token), None)
            for message in page.messages:
                yield message
            token = page.next_page_token
            if not token:
                return

    async def send_many(self, items: Iterable[SendItem], *, chunk_size: int = 500,
                        max_in_flight: int = 2000) -> AsyncIterator[pb.SendMessageResult]:
        """Streams items over SendMessages; yields one result per item, in order.

        At most ``max_in_flight`` items are sent ahead of their results. Items
        without an idempotency key get one; pass your own keys if you may need
        to send the same items again after a failure. A mapping item takes the
        keyword arguments of ``send`` (``traffic_class``, ``send_time``,
        ``expire_time``, ``ttl`` included) and is checked the same way: an item
        that fails the check ends the stream there, and its ValueError (or
        TypeError) is raised after the results of the items before it.
        """
        chunk_size = max(1, min(chunk_size, MAX_CHUNK))
        room = asyncio.Semaphore(max(1, max_in_flight // chunk_size))
        requests = ItemRequests(items)

        async def chunks() -> AsyncIterator[pb.SendMessagesRequest]:
            batch: list[pb.SendMessageRequest] = []
            for request in requests:
                batch.append(request)
                if len(batch) == chunk_size:
                    await room.acquire()
                    yield pb.SendMessagesRequest(items=batch)
                    batch = []
            if batch:
                await room.acquire()
                yield pb.SendMessagesRequest(items=batch)

        call = self._stub.SendMessages(chunks(), metadata=self._metadata)
        try:
            async for response in call:
                room.release()
                for result in response.results:
                    yield result
        except grpc.aio.AioRpcError as error:
            raise SmsError.from_rpc_error(error) from None
        if requests.failure is not None:
            raise requests.failure

    async def watch(self, message_ids: Sequence[str] = (), *,
                    after_cursor: str = "") -> AsyncIterator[pb.StatusEvent]:
        """Status events of the given messages (or the whole tenant), resuming on its own.

        After a dropped connection or a server shutdown it reconnects from the
        last cursor it saw (an event's or a heartbeat's). It returns once every
        watched message is final; a tenant-wide watch runs until you stop it.
        """
        position, failures = WatchPosition(after_cursor), 0
        while True:
            call = self._stub.WatchMessageStatus(position.request(message_ids),
                                                 metadata=self._metadata)
            try:
                async for item in call:
                    failures = 0
                    event = position.take(item)
                    if event is not None:
                        yield event
                    if position.finished:
                        return
            except grpc.aio.AioRpcError as error:
                failures += 1
                if not self._retry.should_retry(error.code(), failures):
                    raise SmsError.from_rpc_error(error) from None
            finally:
                call.cancel()  # also when the caller stops iterating early
            await asyncio.sleep(self._retry.delay(max(failures, 1)))

    async def _unary(self, method: Callable[..., Awaitable[T]], request: Any,
                     timeout: float | None) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await method(request, metadata=self._metadata,
                                    timeout=timeout or self._timeout)
            except grpc.aio.AioRpcError as error:
                if not self._retry.should_retry(error.code(), attempt):
                    raise SmsError.from_rpc_error(error) from None
            await asyncio.sleep(self._retry.delay(attempt))
