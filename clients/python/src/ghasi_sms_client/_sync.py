"""The blocking client, for scripts and services that do not run an event loop."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


class SmsClient:
    """The same calls as AsyncSmsClient, blocking. Safe to share between threads."""

    def __init__(self, target: str, api_key: str, *, timeout: float = 10.0,
                 retry: RetryPolicy | None = None, channel: grpc.Channel | None = None) -> None:
        self._channel = channel or grpc.insecure_channel(target)
        self._owns_channel = channel is None
        self._stub = pb_grpc.SmsServiceStub(self._channel)
        self._metadata = auth_metadata(api_key)
        self._timeout = timeout
        self._retry = retry or RetryPolicy()

    def __enter__(self) -> SmsClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    def send(self, to: str, body: str, *, sender: str = "", client_reference: str = "",
             metadata: Mapping[str, str] | None = None, idempotency_key: str | None = None,
             traffic_class: TrafficClassLike | None = None,
             send_time: dt.datetime | None = None, expire_time: dt.datetime | None = None,
             ttl: dt.timedelta | None = None, timeout: float | None = None) -> pb.Message:
        """See AsyncSmsClient.send (traffic class, scheduling and validity included)."""
        request = send_request(to, body, sender=sender, client_reference=client_reference,
                               metadata=metadata, idempotency_key=idempotency_key,
                               traffic_class=traffic_class, send_time=send_time,
                               expire_time=expire_time, ttl=ttl)
        message: pb.Message = self._unary(self._stub.SendMessage, request, timeout)
        return message

    def get(self, message_id: str, *, timeout: float | None = None) -> pb.Message:
        message: pb.Message = self._unary(self._stub.GetMessage,
                                          pb.GetMessageRequest(id=message_id), timeout)
        return message

    def cancel(self, message_id: str, *, timeout: float | None = None) -> pb.Message:
        message: pb.Message = self._unary(self._stub.CancelMessage,
                                          pb.CancelMessageRequest(id=message_id), timeout)
        return message

    def usage(self, *, timeout: float | None = None) -> pb.Usage:
        """Today's and this month's segments against the quotas, and the rate limit."""
        usage: pb.Usage = self._unary(self._stub.GetUsage, pb.GetUsageRequest(), timeout)
        return usage

    def list(self, *, statuses: Sequence[pb.MessageStatus] = (), to: str = "",
             scheduled_only: bool = False, page_size: int = 100) -> Iterator[pb.Message]:
        """See AsyncSmsClient.list."""
        token = ""
        while True:
            page: pb.ListMessagesResponse = self._unary(
                self._stub.ListMessages, pb.ListMessagesRequest(
                    statuses=list(statuses), to=to, scheduled_only=scheduled_only,
                    page_size=page_size, page_token=token), None)
            yield from page.messages
            token = page.next_page_token
            if not token:
                return

    def send_many(self, items: Iterable[SendItem], *, chunk_size: int = 500,
                  max_in_flight: int = 2000) -> Iterator[pb.SendMessageResult]:
        """See AsyncSmsClient.send_many."""
        chunk_size = max(1, min(chunk_size, MAX_CHUNK))
        room = threading.Semaphore(max(1, max_in_flight // chunk_size))
        requests = ItemRequests(items)

        def chunks() -> Iterator[pb.SendMessagesRequest]:
            batch: list[pb.SendMessageRequest] = []
            for request in requests:
                batch.append(request)
                if len(batch) == chunk_size:
                    room.acquire()
                    yield pb.SendMessagesRequest(items=batch)
                    batch = []
            if batch:
                room.acquire()
                yield pb.SendMessagesRequest(items=batch)

        try:
            for response in self._stub.SendMessages(chunks(), metadata=self._metadata):
                room.release()
                yield from response.results
        except grpc.RpcError as error:
            raise SmsError.from_rpc_error(error) from None
        if requests.failure is not None:
            raise requests.failure

    def watch(self, message_ids: Sequence[str] = (), *,
              after_cursor: str = "") -> Iterator[pb.StatusEvent]:
        """See AsyncSmsClient.watch."""
        position, failures = WatchPosition(after_cursor), 0
        while True:
            call = self._stub.WatchMessageStatus(position.request(message_ids),
                                                 metadata=self._metadata)
            try:
                for item in call:
                    failures = 0
                    event = position.take(item)
                    if event is not None:
                        yield event
                    if position.finished:
                        return
            except grpc.RpcError as error:
                failures += 1
                if not self._retry.should_retry(error.code(), failures):
                    raise SmsError.from_rpc_error(error) from None
            finally:
                call.cancel()  # also when the caller stops iterating early
            time.sleep(self._retry.delay(max(failures, 1)))

    def _unary(self, method: Callable[..., T], request: Any, timeout: float | None) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(request, metadata=self._metadata, timeout=timeout or self._timeout)
            except grpc.RpcError as error:
                code = error.code()
                if not self._retry.should_retry(code, attempt):
                    raise SmsError.from_rpc_error(error) from None
            time.sleep(self._retry.delay(attempt))
