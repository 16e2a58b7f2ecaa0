"""Protobuf <-> domain. Kept apart so the domain never sees a generated class."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from smsgw.domain.errors import ValidationFailed
from smsgw.domain.model import Message, StatusEvent
from smsgw.domain.records import Delivery, Endpoint
from smsgw.domain.validation import SendRequest
from smsgw.proto import sms_pb2 as pb


def send_request(request: pb.SendMessageRequest) -> SendRequest:
    return SendRequest(
        to=request.to, body=request.body, sender=request.sender,
        client_reference=request.client_reference,
        metadata=request.metadata if request.metadata else None,
        idempotency_key=request.idempotency_key,
        traffic_class=traffic_class_name(request.traffic_class),
        send_time=to_datetime(request.send_time, "send_time")
        if request.HasField("send_time") else None,
        expire_time=to_datetime(request.expire_time, "expire_time")
        if request.HasField("expire_time") else None,
        ttl_seconds=to_seconds(request.ttl, "ttl") if request.HasField("ttl") else None,
    )


# google.protobuf.Duration's range: about 10,000 years either way.
_DURATION_SECONDS_MAX = 315_576_000_000


def to_seconds(value: Duration, field: str) -> float:
    """A request's duration in seconds; one a Duration may not hold is refused."""
    if not -_DURATION_SECONDS_MAX <= value.seconds <= _DURATION_SECONDS_MAX \
            or not -999_999_999 <= value.nanos <= 999_999_999 \
            or (value.seconds > 0 > value.nanos) or (value.seconds < 0 < value.nanos):
        raise ValidationFailed.single(field, "is not a valid duration")
    return value.seconds + value.nanos / 1e9


def traffic_class_name(value: int) -> str:
    """'otp' for TRAFFIC_CLASS_OTP; '' when unspecified; an unknown number stays visible."""
    if value == 0:
        return ""
    try:
        return pb.TrafficClass.Name(value).removeprefix("TRAFFIC_CLASS_").lower()
    except ValueError:
        return f"unknown ({value})"


def timestamp(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    seconds = value.timestamp()
    whole = int(seconds // 1)
    return Timestamp(seconds=whole, nanos=value.microsecond * 1000)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_LATEST = (dt.datetime.max.replace(tzinfo=dt.UTC) - _EPOCH) // _MICROSECOND
# google.protobuf.Timestamp's range, 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, is datetime's.
SECONDS_MIN, SECONDS_MAX = -62_135_596_800, 253_402_300_799


def to_datetime(value: Timestamp, field: str) -> dt.datetime:
    """A request's timestamp; one a Timestamp may not hold is refused, naming the field."""
    if not SECONDS_MIN <= value.seconds <= SECONDS_MAX:
        raise ValidationFailed.single(
            field, "must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z")
    if not 0 <= value.nanos <= 999_999_999:
        raise ValidationFailed.single(field, "nanos must be from 0 to 999999999")
    # Rounded up to the microsecond the database keeps: "at or after" and "before" a
    # nanosecond then select the same rows as with that microsecond.
    micros = value.seconds * 1_000_000 - (-value.nanos // 1000)
    return _EPOCH + min(micros, _LATEST) * _MICROSECOND


def message(m: Message) -> pb.Message:
    out = pb.Message(
        id=str(m.id), to=m.to, body=m.body, sender=m.sender, encoding=_enum(m.encoding),
        segments=m.segments, status=_enum(m.status), attempts=m.attempts, provider=m.provider,
        provider_message_id=m.provider_message_id, client_reference=m.client_reference,
        metadata=m.metadata, idempotency_key=m.idempotency_key,
        create_time=timestamp(m.created_at), update_time=timestamp(m.updated_at),
        sent_time=timestamp(m.sent_at), delivered_time=timestamp(m.delivered_at),
        traffic_class=f"TRAFFIC_CLASS_{m.traffic_class.upper()}",
        route=m.route, send_time=timestamp(m.send_at), expire_time=timestamp(m.expire_at),
    )
    if m.error_code:
        out.error.code = m.error_code
        out.error.description = m.error_description
    return out


def status_event(e: StatusEvent) -> pb.StatusEvent:
    out = pb.StatusEvent(
        cursor=e.cursor.encode(), message_id=str(e.message_id), status=_enum(e.status),
        previous_status=_enum(e.previous_status or 0), occur_time=timestamp(e.occurred_at),
        provider=e.provider, provider_message_id=e.provider_message_id, attempt=e.attempt,
        client_reference=e.client_reference,
    )
    if e.error_code:
        out.error.code = e.error_code
        out.error.description = e.error_description
    return out


def now() -> Timestamp:
    stamp = Timestamp()
    stamp.GetCurrentTime()
    return stamp


def _enum(value: int) -> Any:
    """Our IntEnums share the protobuf numbering; the stubs want their own NewType."""
    return cast(Any, int(value))


def webhook_endpoint(e: Endpoint, *, with_secret: bool = False) -> pb.WebhookEndpoint:
    return pb.WebhookEndpoint(
        id=str(e.id), url=e.url, statuses=[_enum(s) for s in sorted(e.statuses)],
        enabled=e.enabled, disabled_reason=e.disabled_reason,
        secret=e.secret if with_secret else "", create_time=timestamp(e.created_at))


def webhook_delivery(d: Delivery) -> pb.WebhookDelivery:
    return pb.WebhookDelivery(
        event_id=d.event_id, message_id=str(d.message_id), status=_enum(d.status),
        attempt=d.attempt, http_status=d.http_status, error=d.error, duration_ms=d.duration_ms,
        attempt_time=timestamp(d.created_at))
