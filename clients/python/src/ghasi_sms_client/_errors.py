"""One error type for every failed call, carrying the server's google.rpc details."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class SmsError(Exception):
    """A call failed: ``code`` is the gRPC status, ``reason`` the server's ErrorInfo reason."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str = "",
                 violations: tuple[FieldViolation, ...] = ()) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.violations = violations

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> SmsError:
        code: grpc.StatusCode = error.code()
        message: str = error.details() or ""
        status = _status(error.trailing_metadata() or ())
        return cls.from_status(code, message, status) if status else cls(code, message)

    @classmethod
    def from_status(cls, code: grpc.StatusCode, message: str,
                    status: status_pb2.Status) -> SmsError:
        reason, violations = "", []
        for packed in status.details:
            info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
            if packed.Unpack(info):
                reason = info.reason
            elif packed.Unpack(bad):
                violations += [FieldViolation(v.field, v.description)
                               for v in bad.field_violations]
        return cls(code, message or status.message, reason, tuple(violations))


def code_of(value: int) -> grpc.StatusCode:
    return next((c for c in grpc.StatusCode if c.value[0] == value), grpc.StatusCode.UNKNOWN)


def _status(trailers: object) -> status_pb2.Status | None:
    for key, value in trailers:  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    return None
