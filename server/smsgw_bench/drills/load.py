"""Client load for a drill: unary sends at a fixed rate and a bulk stream, as callers behave.

A caller that gets UNAVAILABLE retries the same request (same idempotency
key) after the RetryInfo delay, as the README tells clients to: so every id
recorded in ``accepted`` is one the gateway told a client it had stored,
and a retry can never make a second message.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from smsgw.proto import sms_pb2 as pb
from smsgw.proto import sms_pb2_grpc

_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@dataclass
class LoadTally:
    accepted: set[str] = field(default_factory=set)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    retries_without_hint: int = 0  # UNAVAILABLE without google.rpc.RetryInfo
    gave_up: int = 0  # requests still failing when the load's retry budget ran out
    hung_streams: int = 0  # bulk streams that gave no answer within their deadline
    not_unavailable: int = 0  # errors a store outage does not explain

    def error(self, code: grpc.StatusCode, label: str = "") -> None:
        self.errors[f"{label}{code.name}"] += 1
        self.not_unavailable += code is not grpc.StatusCode.UNAVAILABLE

    def summary(self) -> dict[str, object]:
        return {"accepted": len(self.accepted), "errors": dict(self.errors),
                "errors_other_than_unavailable": self.not_unavailable,
                "unavailable_without_retry_info": self.retries_without_hint,
                "gave_up": self.gave_up, "hung_streams": self.hung_streams}


@dataclass(frozen=True, slots=True)
class LoadShape:
    unary_per_second: float = 300.0
    bulk_per_second: float = 300.0
    chunk: int = 100
    chunks_per_stream: int = 20
    max_in_flight: int = 400
    retry_budget_seconds: float = 90.0  # how long a caller keeps retrying one request


class Load:
    def __init__(self, address: str, api_key: str, shape: LoadShape) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = sms_pb2_grpc.SmsServiceStub(self._channel)
        self._auth = (("authorization", f"Bearer {api_key}"),)
        self._shape = shape
        self._run = uuid.uuid4().hex[:10]
        self._serial = 0
        self.tally = LoadTally()

    async def run(self, seconds: float) -> None:
        """Offers load for ``seconds``, then waits for every retrying caller to finish."""
        stop_at = time.monotonic() + seconds
        parts = [asyncio.create_task(self._unary_until(stop_at)),
                 asyncio.create_task(self._bulk_until(stop_at))]
        try:
            await asyncio.gather(*parts)
        finally:
            for part in parts:
                part.cancel()

    async def close(self) -> None:
        await self._channel.close(None)

    def _request(self) -> pb.SendMessageRequest:
        self._serial += 1
        return pb.SendMessageRequest(to=f"+1650253{self._serial % 10000:04d}",
                                     body=f"drill {self._serial}",
                                     idempotency_key=f"drill-{self._run}-{self._serial}")

    async def _unary_until(self, stop_at: float) -> None:
        if self._shape.unary_per_second <= 0:
            return
        room = asyncio.Semaphore(self._shape.max_in_flight)
        calls: set[asyncio.Task[None]] = set()
        interval = 1 / self._shape.unary_per_second
        next_at = time.monotonic()
        try:
            while next_at < stop_at:
                await room.acquire()
                call = asyncio.create_task(self._send_until_answered(self._request(), room))
                calls.add(call)
                call.add_done_callback(calls.discard)
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if calls:
                await asyncio.gather(*calls)
        finally:
            for call in calls:
                call.cancel()

    async def _send_until_answered(self, request: pb.SendMessageRequest,
                                   room: asyncio.Semaphore) -> None:
        give_up_at = time.monotonic() + self._shape.retry_budget_seconds
        try:
            while True:
                try:
                    message = await self._stub.SendMessage(request, metadata=self._auth,
                                                           timeout=10)
                except grpc.aio.AioRpcError as exc:
                    delay = self._failed(exc)
                    if delay is None or time.monotonic() + delay > give_up_at:
                        self.tally.gave_up += delay is not None
                        return
                    await asyncio.sleep(delay)
                    continue
                self.tally.accepted.add(message.id)
                return
        finally:
            room.release()

    def _failed(self, exc: grpc.aio.AioRpcError) -> float | None:
        """Counts the error; returns how long to wait before retrying, None: don't."""
        code = exc.code()
        self.tally.error(code)
        if code not in _RETRYABLE:
            return None
        hint = retry_delay(exc)
        if hint is None and code is grpc.StatusCode.UNAVAILABLE:
            self.tally.retries_without_hint += 1
        return hint if hint is not None else 0.5

    async def _bulk_until(self, stop_at: float) -> None:
        if self._shape.bulk_per_second <= 0:
            return
        retry: list[pb.SendMessageRequest] = []
        interval = self._shape.chunk / self._shape.bulk_per_second
        give_up_at = stop_at + self._shape.retry_budget_seconds
        while (time.monotonic() < stop_at or retry) and time.monotonic() < give_up_at:
            retry = await self._one_stream(retry, stop_at, interval)
            if retry:
                await asyncio.sleep(0.5)
        self.tally.gave_up += len(retry)

    async def _one_stream(self, retry: list[pb.SendMessageRequest], stop_at: float,
                          interval: float) -> list[pb.SendMessageRequest]:
        """One bulk stream of a few chunks; returns the items to send again."""
        sent = _Chunks()
        call = self._stub.SendMessages(metadata=self._auth, timeout=60)
        # Reading in a task of its own: cancelling a pending read would cancel the call.
        reader = asyncio.create_task(self._read_answers(call, sent, retry))
        try:
            for _ in range(self._shape.chunks_per_stream):
                if time.monotonic() >= stop_at and not retry:
                    break
                items, retry = retry[:self._shape.chunk], retry[self._shape.chunk:]
                if time.monotonic() < stop_at:
                    items += [self._request() for _ in range(self._shape.chunk - len(items))]
                sent.add(items)
                await _write(call, pb.SendMessagesRequest(items=items))
                await asyncio.sleep(interval)
            await call.done_writing()
            await reader
        except grpc.aio.AioRpcError as exc:
            self.tally.hung_streams += exc.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            self._failed(exc)
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            retry.extend(item for chunk in sent.unanswered for item in chunk)
        finally:
            call.cancel()
        return retry

    async def _read_answers(self, call: _BulkCall, sent: _Chunks,
                            retry: list[pb.SendMessageRequest]) -> None:
        while (response := await call.read()) is not _EOF:
            start, items = sent.answered()
            for result in response.results:
                if result.HasField("message"):
                    self.tally.accepted.add(result.message.id)
                    continue
                code = _CODES.get(result.error.code, grpc.StatusCode.UNKNOWN)
                self.tally.error(code, "item ")
                if code in _RETRYABLE:
                    retry.append(items[result.index - start])
        if sent.unanswered:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNKNOWN, grpc.aio.Metadata(),
                                       grpc.aio.Metadata(), "the stream ended early", None)


class _Chunks:
    """The chunks one stream sent, in order, and how many were answered."""

    def __init__(self) -> None:
        self._chunks: list[tuple[int, list[pb.SendMessageRequest]]] = []
        self._next_index = 0
        self._answered = 0

    def add(self, items: list[pb.SendMessageRequest]) -> None:
        self._chunks.append((self._next_index, items))
        self._next_index += len(items)

    def answered(self) -> tuple[int, list[pb.SendMessageRequest]]:
        """The next chunk in order, now answered: (its first index, its items)."""
        chunk = self._chunks[self._answered]
        self._answered += 1
        return chunk

    @property
    def unanswered(self) -> list[list[pb.SendMessageRequest]]:
        return [items for _, items in self._chunks[self._answered:]]


async def _write(call: _BulkCall, request: pb.SendMessagesRequest) -> None:
    """Writes a chunk; a stream the server already ended raises its status instead."""
    try:
        await call.write(request)
    except asyncio.InvalidStateError:
        code, details = await call.code(), await call.details()
        raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), await call.trailing_metadata(),
                                   details, None) from None


_BulkCall = Any  # grpc.aio.StreamStreamCall, whose stubs lack EOF and read()'s type
_EOF: object = grpc.aio.EOF  # type: ignore[attr-defined]
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def retry_delay(exc: grpc.aio.AioRpcError) -> float | None:
    """The google.rpc.RetryInfo delay in an error's details, if there is one."""
    trailers: Any = exc.trailing_metadata() or ()
    for key, value in trailers:
        if key != "grpc-status-details-bin":
            continue
        for packed in status_pb2.Status.FromString(value).details:
            info = error_details_pb2.RetryInfo()
            if packed.Unpack(info):
                return float(info.retry_delay.ToTimedelta().total_seconds())
    return None
