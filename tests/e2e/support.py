"""Helpers for talking to a real server: decoding error details, waiting on streams."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from smsgw.proto import sms_pb2 as pb


def details(error: grpc.aio.AioRpcError) -> status_pb2.Status:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    raise AssertionError("no google.rpc.Status in the trailers")


def reason(status: status_pb2.Status) -> str:
    for packed in status.details:
        info = error_details_pb2.ErrorInfo()
        if packed.Unpack(info):
            return info.reason
    raise AssertionError("no ErrorInfo in the details")


def violated_fields(status: status_pb2.Status) -> list[str]:
    for packed in status.details:
        bad = error_details_pb2.BadRequest()
        if packed.Unpack(bad):
            return [v.field for v in bad.field_violations]
    return []


def request(to: str = "+16502530000", body: str = "hello", key: str | None = None,
            **fields: object) -> pb.SendMessageRequest:
    return pb.SendMessageRequest(to=to, body=body, idempotency_key=key or uuid.uuid4().hex,
                                 **fields)  # type: ignore[arg-type]


STATUS = pb.MessageStatus.Name


async def stream_accepted(client: Any, chunks: int, per_chunk: int) -> list[str]:
    """Submits chunks of new messages over the bulk stream; returns the accepted ids."""
    async def requests() -> AsyncIterator[pb.SendMessagesRequest]:
        for _chunk in range(chunks):
            yield pb.SendMessagesRequest(items=[request() for _ in range(per_chunk)])

    return [r.message.id async for response in client.stub.SendMessages(
        requests(), metadata=client.auth) for r in response.results if r.HasField("message")]
