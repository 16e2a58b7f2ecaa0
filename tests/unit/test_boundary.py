"""The one error boundary: unary, server-streaming and bidi handlers end their errors alike."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from smsgw.api.boundary import bidi_stream, server_stream, unary
from smsgw.api.interceptors import Malformed
from smsgw.api.servicer import ApiConfig, SmsServicer
from smsgw.domain import errors
from smsgw.domain.encoding import Encoding
from smsgw.domain.model import Message, SubmitOutcome, Tenant
from smsgw.domain.status import MessageStatus
from smsgw.domain.validation import Limits
from smsgw.proto import sms_pb2 as pb

SECRET = "password=hunter2 at db.internal:5432"


class Context:
    """A ServicerContext as far as the boundary uses it: abort raises, as grpc's does."""

    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.status = status_pb2.Status()

    async def abort(self, code: grpc.StatusCode, details: str = "",
                    trailing_metadata: tuple[tuple[str, bytes], ...] = ()) -> None:
        assert self.code is None, "aborted twice"
        self.code, self.details = code, details
        for key, value in trailing_metadata:
            if key == "grpc-status-details-bin":
                self.status = status_pb2.Status.FromString(value)
        raise grpc.aio.AbortError(details)

    def detail(self, kind: type[Any]) -> Any:
        for packed in self.status.details:
            found = kind()
            if packed.Unpack(found):
                return found
        return None


class Handlers:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    @unary
    async def Unary(self, request: object, context: Any) -> str:
        raise self.error

    @server_stream
    async def ServerStream(self, request: object, context: Any) -> AsyncIterator[int]:
        yield 1
        yield 2
        raise self.error

    @bidi_stream
    async def Bidi(self, requests: AsyncIterator[object], context: Any) -> AsyncIterator[object]:
        async for request in requests:
            yield request
        raise self.error


async def _drain(responses: AsyncIterator[object]) -> list[object]:
    seen: list[object] = []
    with pytest.raises(grpc.aio.AbortError):
        async for response in responses:
            seen.append(response)
    return seen


async def _consume(responses: AsyncIterator[object]) -> None:
    async for _ in responses:
        pass


async def _items(*items: object) -> AsyncIterator[object]:
    for item in items:
        yield item


def _calls(error: BaseException, context: Context) -> dict[str, Any]:
    handlers = Handlers(error)
    return {
        "unary": lambda: handlers.Unary("request", context),
        "server stream": lambda: _consume(handlers.ServerStream("request", context)),
        "bidi stream": lambda: _consume(handlers.Bidi(_items("a", "b"), context)),
    }


KINDS = ["unary", "server stream", "bidi stream"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_domain_error_becomes_its_status_with_details(kind):
    context = Context()
    error = errors.ValidationFailed.single("to", "is required")
    with pytest.raises(grpc.aio.AbortError):
        await _calls(error, context)[kind]()
    assert context.code is grpc.StatusCode.INVALID_ARGUMENT
    assert context.details == "invalid request: to: is required"
    assert context.detail(error_details_pb2.ErrorInfo).reason == "INVALID_ARGUMENT"
    assert [v.field for v in context.detail(error_details_pb2.BadRequest).field_violations] == [
        "to"]


@pytest.mark.parametrize("kind", KINDS)
async def test_unavailable_tells_the_caller_when_to_retry(kind):
    context = Context()
    with pytest.raises(grpc.aio.AbortError):
        await _calls(errors.Unavailable("database unavailable"), context)[kind]()
    assert context.code is grpc.StatusCode.UNAVAILABLE
    assert context.detail(error_details_pb2.RetryInfo).retry_delay.seconds == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_anything_else_is_logged_and_internal_without_its_text(kind, caplog):
    context = Context()
    with caplog.at_level(logging.ERROR, "smsgw.api.boundary"), \
            pytest.raises(grpc.aio.AbortError):
        await _calls(KeyError(SECRET), context)[kind]()
    assert context.code is grpc.StatusCode.INTERNAL
    assert context.details == "internal error"
    assert SECRET not in str(context.status)
    [record] = caplog.records
    assert record.exc_info is not None and SECRET in caplog.text  # the traceback, in our log


@pytest.mark.parametrize("kind", KINDS)
async def test_cancellation_passes_through_untranslated(kind):
    context = Context()
    with pytest.raises(asyncio.CancelledError):
        await _calls(asyncio.CancelledError(), context)[kind]()
    assert context.code is None


async def test_a_stream_ends_with_the_status_after_what_it_already_sent():
    context = Context()
    sent = await _drain(Handlers(errors.NotFound("gone")).ServerStream("request", context))
    assert sent == [1, 2]
    assert context.code is grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("kind", ["unary", "server stream"])
async def test_an_undecodable_request_is_its_validation_error(kind):
    context, handlers = Context(), Handlers(AssertionError("the handler never runs"))
    call = handlers.Unary if kind == "unary" else handlers.ServerStream
    with pytest.raises(grpc.aio.AbortError):
        result = call(Malformed("truncated message"), context)
        await (result if kind == "unary" else _consume(result))
    assert context.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "truncated message" in context.details
    assert [v.field for v in context.detail(error_details_pb2.BadRequest).field_violations] == [
        "request"]


async def test_an_undecodable_chunk_ends_a_bidi_stream_where_it_is_read():
    context = Context()
    handlers = Handlers(AssertionError("never reached"))
    sent = await _drain(handlers.Bidi(_items("a", Malformed("bad utf-8"), "c"), context))
    assert sent == ["a"]
    assert context.code is grpc.StatusCode.INVALID_ARGUMENT


class Auth:
    async def tenant(self, context: object, scope: str = "send") -> Tenant:
        return Tenant(uuid.uuid4(), "t", frozenset({"send"}))


class Submitter:
    """Fails the first batch with an unexpected error; the others wait until cancelled."""

    def __init__(self) -> None:
        self.calls = 0
        self.cancelled = 0

    async def submit_many(self, tenant: uuid.UUID, items: list[Any]) -> list[SubmitOutcome]:
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(0.05)  # meanwhile the reader fills the queue and waits on it
            raise RuntimeError(SECRET)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("unreachable")


class StoringSubmitter:
    def __init__(self) -> None:
        self.stored: list[str] = []

    async def submit_many(self, tenant: uuid.UUID, items: list[Any]) -> list[SubmitOutcome]:
        self.stored += [item.client_reference for item in items]
        return [SubmitOutcome(_message(item)) for item in items]


def _message(item: Any) -> Message:
    now = dt.datetime.now(dt.UTC)
    return Message(id=uuid.uuid4(), tenant_id=uuid.uuid4(), to=item.to, body=item.body,
                   sender="", encoding=Encoding.GSM7, segments=1, status=MessageStatus.QUEUED,
                   attempts=0, client_reference=item.client_reference,
                   idempotency_key=item.idempotency_key, created_at=now, updated_at=now)


def _servicer(submitter: object, chunks_in_flight: int = 1) -> SmsServicer:
    # Only the bulk path runs: no message store, watcher or webhook store is needed.
    return SmsServicer(Auth(), submitter, None, None,  # type: ignore[arg-type]
                       ApiConfig(Limits(), chunks_in_flight=chunks_in_flight), None)


def _chunk(*refs: str) -> pb.SendMessagesRequest:
    return pb.SendMessagesRequest(items=[pb.SendMessageRequest(
        to="+16502530000", body="hi", idempotency_key=f"k-{ref}", client_reference=ref)
        for ref in refs])


async def test_a_bulk_stream_whose_chunk_fails_ends_with_a_status_and_never_hangs(caplog):
    # With the read-ahead queue full, the stream used to wait forever for its reader.
    submitter, context = Submitter(), Context()
    chunks = [_chunk(f"r{n}") for n in range(6)]
    started = asyncio.get_running_loop().time()
    with caplog.at_level(logging.ERROR, "smsgw.api.boundary"):
        sent = await asyncio.wait_for(
            _drain(_servicer(submitter).SendMessages(_items(*chunks), context)), 5)
        for _ in range(3):
            await asyncio.sleep(0)  # let the abandoned chunks see their cancellation
    assert asyncio.get_running_loop().time() - started < 1
    assert sent == []
    assert context.code is grpc.StatusCode.INTERNAL and context.details == "internal error"
    assert SECRET not in str(context.status)
    assert submitter.calls >= 2
    assert submitter.cancelled == submitter.calls - 1  # nothing left running


async def test_a_bulk_stream_answers_the_chunks_before_an_undecodable_one():
    submitter, context = StoringSubmitter(), Context()
    requests = _items(_chunk("a", "b"), _chunk("c"), Malformed("truncated"), _chunk("d"))
    sent = await _drain(_servicer(submitter, 4).SendMessages(requests, context))
    assert [[r.client_reference for r in s.results] for s in sent] == [["a", "b"], ["c"]]
    assert context.code is grpc.StatusCode.INVALID_ARGUMENT
    assert submitter.stored == ["a", "b", "c"]


async def test_a_chunk_over_1000_items_gets_an_error_per_item_and_the_stream_goes_on():
    submitter, context = StoringSubmitter(), Context()
    big = _chunk(*(f"b{n}" for n in range(1001)))
    responses = _servicer(submitter, 4).SendMessages(_items(_chunk("a"), big, _chunk("c")),
                                                     context)
    sent = [response async for response in responses]
    assert context.code is None
    assert [len(s.results) for s in sent] == [1, 1001, 1]
    results = [r for s in sent for r in s.results]
    assert [r.index for r in results] == list(range(1003))
    assert {r.WhichOneof("result") for r in results[1:1002]} == {"error"}
    assert {r.error.code for r in results[1:1002]} == {grpc.StatusCode.INVALID_ARGUMENT.value[0]}
    assert submitter.stored == ["a", "c"]
