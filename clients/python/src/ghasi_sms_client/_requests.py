"""Building requests: shared by the async and the sync client."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeAlias, cast

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from ghasi_sms_client._proto import sms_pb2 as pb

SendItem = pb.SendMessageRequest | Mapping[str, Any]
# pb.TRAFFIC_CLASS_OTP, or its short name: "otp", "transactional", "marketing".
TrafficClassLike: TypeAlias = "pb.TrafficClass | str"

_TRAFFIC_CLASS_PREFIX = "TRAFFIC_CLASS_"


def send_request(to: str, body: str, *, sender: str = "", client_reference: str = "",
                 metadata: Mapping[str, str] | None = None,
                 idempotency_key: str | None = None,
                 traffic_class: TrafficClassLike | None = None,
                 send_time: dt.datetime | None = None,
                 expire_time: dt.datetime | None = None,
                 ttl: dt.timedelta | None = None) -> pb.SendMessageRequest:
    """A request with an idempotency key fixed now, so every retry reuses it.

    The timing options are checked here rather than left to the server where
    the mistake could otherwise pass silently: a naive datetime would be read
    as UTC by protobuf, moving the send by the caller's UTC offset, so it is
    refused; ``expire_time`` with ``ttl`` is ambiguous, so it is refused too.
    Unset options stay unset on the wire, so the server's defaults apply
    (transactional traffic, send now, the traffic class's validity).
    """
    if expire_time is not None and ttl is not None:
        raise ValueError("set expire_time or ttl, not both: each says when the message "
                         "stops being worth sending")
    request = pb.SendMessageRequest(
        to=to, body=body, sender=sender, client_reference=client_reference,
        metadata=dict(metadata or {}), idempotency_key=idempotency_key or str(uuid.uuid4()))
    if traffic_class is not None:
        request.traffic_class = traffic_class_value(traffic_class)
    if send_time is not None:
        request.send_time.CopyFrom(_timestamp(send_time, "send_time"))
    if expire_time is not None:
        request.expire_time.CopyFrom(_timestamp(expire_time, "expire_time"))
    if ttl is not None:
        request.ttl.CopyFrom(_duration(ttl))
    return request


def traffic_class_value(value: TrafficClassLike) -> pb.TrafficClass:
    """The enum value of ``pb.TRAFFIC_CLASS_OTP`` or of ``"otp"`` (any case, with or without
    the ``TRAFFIC_CLASS_`` prefix), so callers can take the class from configuration text.

    A misspelt name raises ValueError here: sent as "unspecified" it would quietly
    travel as transactional, in the wrong lane. A number passes through unchecked,
    so a class added to the server later can be used before this client knows its name.
    """
    if not isinstance(value, str):
        return value
    name = value.strip().upper().replace("-", "_")
    if not name.startswith(_TRAFFIC_CLASS_PREFIX):
        name = _TRAFFIC_CLASS_PREFIX + name
    # The stubs type the numbers as int; these are TrafficClass's own.
    numbers = {n: cast("pb.TrafficClass", v) for n, v in pb.TrafficClass.items() if v}
    if name not in numbers:  # "unspecified" too: leave traffic_class unset for that
        known = ", ".join(n.removeprefix(_TRAFFIC_CLASS_PREFIX).lower() for n in numbers)
        raise ValueError(f"unknown traffic class {value!r}; use one of {known} "
                         f"(or a pb.TRAFFIC_CLASS_* value)")
    return numbers[name]


def _timestamp(value: dt.datetime, field: str) -> Timestamp:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{field} must be a timezone-aware datetime, such as "
            f"datetime.now(UTC) + timedelta(hours=1): a naive one names no instant")
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _duration(value: dt.timedelta) -> Duration:
    duration = Duration()
    duration.FromTimedelta(value)
    return duration


def as_request(item: SendItem) -> pb.SendMessageRequest:
    if isinstance(item, pb.SendMessageRequest):
        if item.idempotency_key:
            return item
        keyed = pb.SendMessageRequest()
        keyed.CopyFrom(item)
        keyed.idempotency_key = str(uuid.uuid4())
        return keyed
    return send_request(**dict(item))


class ItemRequests:
    """The items of a bulk send as requests, stopping at the first that cannot be one.

    A request stream's iterator runs inside grpc, which reports its exception as a
    bare CANCELLED or UNKNOWN and loses it. So an item that raises (a naive
    ``send_time``, an unknown traffic class, a misspelt keyword) or an ``items``
    iterator that raises ends the stream cleanly instead: the items before it are
    sent and answered, none after it, and ``failure`` keeps the exception, noted
    with the item's index, for the helper to raise once those answers are in.
    """

    def __init__(self, items: Iterable[SendItem]) -> None:
        self._items = items
        self.failure: Exception | None = None

    def __iter__(self) -> Iterator[pb.SendMessageRequest]:
        iterator = iter(self._items)
        index = 0
        while True:
            try:
                request = as_request(next(iterator))
            except StopIteration:
                return
            except Exception as error:  # kept; the helper raises it
                error.add_note(f"at send_many item {index}: the items before it were sent, "
                               f"none after it")
                self.failure = error
                return
            yield request
            index += 1


def auth_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),)
