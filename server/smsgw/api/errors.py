"""Domain errors -> gRPC status with google.rpc details, in one table."""

from __future__ import annotations

import datetime as dt
import math

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from smsgw.domain import errors

DOMAIN = "sms.ghasi.io"

_CODES: dict[type[errors.SmsError], grpc.StatusCode] = {
    errors.ValidationFailed: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.IdempotencyKeyReused: grpc.StatusCode.ALREADY_EXISTS,
    errors.NotCancelable: grpc.StatusCode.FAILED_PRECONDITION,
    errors.InvalidTransition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def grpc_code(error: errors.SmsError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in _CODES:
            return _CODES[kind]
    return grpc.StatusCode.INTERNAL


def rpc_status(error: errors.SmsError) -> status_pb2.Status:
    """The google.rpc.Status for an error: used for aborts and for bulk item results."""
    code = grpc_code(error)
    metadata = error.metadata if isinstance(error, errors.ResourceExhausted) else {}
    details = [_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN,
                                                 metadata=metadata))]
    if isinstance(error, errors.Unavailable | errors.ResourceExhausted):
        delay = duration_pb2.Duration()
        delay.FromTimedelta(dt.timedelta(seconds=error.retry_after_seconds))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    if isinstance(error, errors.ResourceExhausted):
        details.append(_pack(error_details_pb2.QuotaFailure(violations=[
            error_details_pb2.QuotaFailure.Violation(subject=error.subject,
                                                     description=error.limit)])))
    if isinstance(error, errors.ValidationFailed):
        details.append(_pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ])))
    return status_pb2.Status(code=getattr(code_pb2, code.name), message=error.message,
                             details=details)


def trailing_metadata(status: status_pb2.Status) -> tuple[tuple[str, str | bytes], ...]:
    """The status's details; and when it says when to retry, ``retry-after`` in whole
    seconds, which Envoy's transcoder hands REST callers as the Retry-After header."""
    found: tuple[tuple[str, str | bytes], ...] = (
        ("grpc-status-details-bin", status.SerializeToString()),)
    for packed in status.details:
        retry = error_details_pb2.RetryInfo()
        if packed.Is(retry.DESCRIPTOR) and packed.Unpack(retry):
            seconds = retry.retry_delay.ToTimedelta().total_seconds()
            found += (("retry-after", str(max(1, math.ceil(seconds)))),)
    return found


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed
