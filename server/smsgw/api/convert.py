"""Protobuf <-> domain. Kept apart so the domain never sees a generated class."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from google.protobuf.timestamp_pb2 import Timestamp

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
    )


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


def to_datetime(value: Timestamp) -> dt.datetime:
    return dt.datetime.fromtimestamp(value.seconds + value.nanos / 1e9, dt.UTC)


def message(m: Message) -> pb.Message:
    out = pb.Message(
        id=str(m.id), to=m.to, body=m.body, sender=m.sender, encoding=_enum(m.encoding),
        segments=m.segments, status=_enum(m.status), attempts=m.attempts, provider=m.provider,
        provider_message_id=m.provider_message_id, client_reference=m.client_reference,
        metadata=m.metadata, idempotency_key=m.idempotency_key,
        create_time=timestamp(m.created_at), update_time=timestamp(m.updated_at),
        sent_time=timestamp(m.sent_at), delivered_time=timestamp(m.delivered_at),
        traffic_class=f"TRAFFIC_CLASS_{m.traffic_class.upper()}",
        route=m.route,
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
