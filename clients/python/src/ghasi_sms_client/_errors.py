"""One error type for every failed call, carrying the server's google.rpc details."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2, status_pb2


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class SmsError(Exception):
    """A call failed: ``code`` is the gRPC status, ``reason`` the server's ErrorInfo reason.

    ``retry_after`` is the server's google.rpc.RetryInfo in seconds (None when it
    sent none), ``metadata`` its ErrorInfo metadata.
    """

    def __init__(self, code: grpc.StatusCode, message: str, reason: str = "",
                 violations: tuple[FieldViolation, ...] = (), *,
                 retry_after: float | None = None,
                 metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.violations = violations
        self.retry_after = retry_after
        self.metadata = dict(metadata or {})

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> SmsError:
        code: grpc.StatusCode = error.code()
        message: str = error.details() or ""
        status = _status(error.trailing_metadata() or ())
        return cls.from_status(code, message, status) if status else cls(code, message)

    @classmethod
    def from_status(cls, code: grpc.StatusCode, message: str,
                    status: status_pb2.Status) -> SmsError:
        reason, violations, metadata, retry_after = "", [], {}, None
        for packed in status.details:
            info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
            retry = error_details_pb2.RetryInfo()
            if packed.Unpack(info):
                reason, metadata = info.reason, dict(info.metadata)
            elif packed.Unpack(bad):
                violations += [FieldViolation(v.field, v.description)
                               for v in bad.field_violations]
            elif packed.Unpack(retry):
                retry_after = retry.retry_delay.ToTimedelta().total_seconds()
        kind = LimitExceeded if code == grpc.StatusCode.RESOURCE_EXHAUSTED else cls
        return kind(code, message or status.message, reason, tuple(violations),
                    retry_after=retry_after, metadata=metadata)

    @classmethod
    def from_result(cls, status: status_pb2.Status) -> SmsError:
        """The error of one item of a batch or bulk stream (SendMessageResult.error)."""
        return cls.from_status(code_of(status.code), status.message, status)


class LimitExceeded(SmsError):
    """RESOURCE_EXHAUSTED: a tenant limit said "not now".

    ``reason`` is ``RATE_LIMITED`` (over the messages-per-second rate: retry after
    ``retry_after`` seconds) or ``QUOTA_EXCEEDED`` (a daily or monthly segment
    quota is used up until ``reset_time``). Not retried by the client: a retry
    sooner than ``retry_after`` is refused again.
    """

    @property
    def rate_limited(self) -> bool:
        return self.reason == "RATE_LIMITED"

    @property
    def quota_exceeded(self) -> bool:
        return self.reason == "QUOTA_EXCEEDED"

    @property
    def reset_time(self) -> dt.datetime | None:
        """When an exceeded quota resets (UTC), if the server said."""
        text = self.metadata.get("reset_time")
        return dt.datetime.fromisoformat(text) if text else None


def code_of(value: int) -> grpc.StatusCode:
    return next((c for c in grpc.StatusCode if c.value[0] == value), grpc.StatusCode.UNKNOWN)


def _status(trailers: object) -> status_pb2.Status | None:
    for key, value in trailers:  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    return None
