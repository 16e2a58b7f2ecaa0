"""Server interceptors.

grpc-python answers a request it cannot decode (invalid UTF-8 in a string
field, a truncated frame) with INTERNAL, which would blame us for the
client's bytes. ``TolerantDecoding`` decodes instead into a ``Malformed``
marker that the error boundary (api/boundary.py) turns into INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError

from smsgw.domain.errors import ValidationFailed

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]


@dataclass(frozen=True, slots=True)
class Malformed:
    reason: str

    def error(self) -> ValidationFailed:
        return ValidationFailed.single("request", f"is not a valid message: {self.reason}")


def _tolerant(decode: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def decode_or_mark(raw: bytes) -> Any:
        try:
            return decode(raw)
        except DecodeError as exc:
            return Malformed(str(exc))

    return decode_or_mark


class TolerantDecoding(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, service_prefix: str | tuple[str, ...]) -> None:
        self._prefix = service_prefix

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        decode = getattr(handler, "request_deserializer", None)
        if handler is None or decode is None or not method.startswith(self._prefix):
            return handler
        return handler._replace(request_deserializer=_tolerant(decode))  # type: ignore[attr-defined,no-any-return]
