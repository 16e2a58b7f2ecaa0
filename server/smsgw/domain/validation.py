"""Turns a raw send request into a Submission, or names every field that is wrong."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from smsgw.domain import encoding, phone
from smsgw.domain.errors import FieldViolation, ValidationFailed
from smsgw.domain.model import Submission
from smsgw.domain.routing import DEFAULT_TRAFFIC_CLASS, TRAFFIC_CLASSES

# Used with fullmatch: "$" would also match before a trailing newline.
_ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9 ._&-]{1,11}")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # printable ASCII, no spaces


@dataclass(frozen=True, slots=True)
class Limits:
    max_segments: int = 10
    max_metadata_entries: int = 16
    max_metadata_key: int = 64
    max_metadata_value: int = 512
    max_client_reference: int = 128
    default_region: str | None = None
    # How far ahead a send_time may be.
    max_schedule_ahead_seconds: float = 30 * 86400.0
    # The longest validity a caller may ask for, and each class's default.
    max_validity_seconds: float = 7 * 86400.0
    default_validity_seconds: Mapping[str, float] = field(default_factory=lambda: {
        "otp": 600.0, "transactional": 86400.0, "marketing": 86400.0})


@dataclass(frozen=True, slots=True)
class SendRequest:
    """The fields of SendMessageRequest, free of protobuf."""

    to: str
    body: str
    sender: str = ""
    client_reference: str = ""
    metadata: Mapping[str, str] | None = None
    idempotency_key: str = ""
    traffic_class: str = ""  # empty: transactional
    send_time: dt.datetime | None = None
    expire_time: dt.datetime | None = None
    ttl_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class _Timing:
    send_at: dt.datetime | None
    expire_at: dt.datetime | None


def validate(request: SendRequest, limits: Limits, now: dt.datetime | None = None) -> Submission:
    """``now`` is the accepting server's clock, passed in so the rules stay pure."""
    violations: list[FieldViolation] = []
    to = phone.normalize(request.to, "to", limits.default_region)
    if isinstance(to, FieldViolation):
        violations.append(to)
    length = _check_body(request.body, limits, violations)
    _check_sender(request.sender, violations)
    _check_text("client_reference", request.client_reference, limits.max_client_reference,
                violations)
    metadata = dict(request.metadata or {})
    _check_metadata(metadata, limits, violations)
    _check_idempotency_key(request.idempotency_key, violations)
    traffic_class = request.traffic_class or DEFAULT_TRAFFIC_CLASS
    if traffic_class not in TRAFFIC_CLASSES:
        violations.append(FieldViolation(
            "traffic_class", f"must be one of {', '.join(TRAFFIC_CLASSES)}"))
    timing = _check_timing(request, traffic_class, limits,
                           now or dt.datetime.now(dt.UTC), violations)
    if violations:
        raise ValidationFailed(violations)
    assert isinstance(to, str) and length is not None
    return Submission(
        to=to, body=request.body, sender=request.sender,
        client_reference=request.client_reference, metadata=metadata,
        idempotency_key=request.idempotency_key, encoding=length.encoding,
        segments=length.segments,
        fingerprint=fingerprint(to, request.body, request.sender,
                                request.client_reference, metadata, traffic_class,
                                _timing_parts(request)),
        traffic_class=traffic_class, send_at=timing.send_at, expire_at=timing.expire_at,
    )


def fingerprint(to: str, body: str, sender: str, reference: str,
                metadata: Mapping[str, str], traffic_class: str = DEFAULT_TRAFFIC_CLASS,
                timing: tuple[str, ...] = ()) -> str:
    """Identifies a payload, so a reused idempotency key can be told from a replay."""
    digest = hashlib.blake2b(digest_size=16)
    # The default class adds nothing, so fingerprints stored before classes existed still match.
    extra = () if traffic_class == DEFAULT_TRAFFIC_CLASS else ("\x01class", traffic_class)
    for part in (to, body, sender, reference, *_flatten(metadata), *extra, *timing):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def _timing_parts(request: SendRequest) -> tuple[str, ...]:
    """The timing fields as asked (a ttl, not the expiry it gives), so a retry of the
    same request a second later is still the same payload. Unset fields add nothing."""
    parts: list[str] = []
    if request.send_time is not None:
        parts += ["\x01send_time", request.send_time.isoformat()]
    if request.expire_time is not None:
        parts += ["\x01expire_time", request.expire_time.isoformat()]
    if request.ttl_seconds is not None:
        parts += ["\x01ttl", repr(request.ttl_seconds)]
    return tuple(parts)


def _check_timing(request: SendRequest, traffic_class: str, limits: Limits, now: dt.datetime,
                  violations: list[FieldViolation]) -> _Timing:
    """When the message is due and until when it may leave.

    A send_time in the past means now. Validity counts from when the message
    is due; without expire_time or ttl the traffic class's default applies.
    """
    send_at = request.send_time if request.send_time and request.send_time > now else None
    if send_at is not None and (send_at - now).total_seconds() > limits.max_schedule_ahead_seconds:
        violations.append(FieldViolation("send_time", (
            f"must be at most {limits.max_schedule_ahead_seconds / 86400:g} days ahead")))
    due = send_at or now
    if request.expire_time is not None and request.ttl_seconds is not None:
        violations.append(FieldViolation("ttl", "set expire_time or ttl, not both"))
        return _Timing(send_at, None)
    if request.ttl_seconds is not None:
        if request.ttl_seconds <= 0:
            violations.append(FieldViolation("ttl", "must be positive"))
            return _Timing(send_at, None)
        validity = request.ttl_seconds
        name = "ttl"
    elif request.expire_time is not None:
        validity = (request.expire_time - due).total_seconds()
        name = "expire_time"
        if validity <= 0:
            violations.append(FieldViolation(name, "must be after send_time (or now)"))
            return _Timing(send_at, None)
    else:
        validity = limits.default_validity_seconds.get(traffic_class, limits.max_validity_seconds)
        name = ""
    if name and validity > limits.max_validity_seconds:
        violations.append(FieldViolation(name, (
            f"a validity of at most {limits.max_validity_seconds / 3600:g} hours is allowed")))
    validity = min(validity, limits.max_validity_seconds) if not name else validity
    if request.expire_time is not None and request.ttl_seconds is None:
        return _Timing(send_at, request.expire_time)
    return _Timing(send_at, due + dt.timedelta(seconds=validity))


def _flatten(metadata: Mapping[str, str]) -> list[str]:
    return [item for key in sorted(metadata) for item in (key, metadata[key])]


def _check_body(body: str, limits: Limits,
                violations: list[FieldViolation]) -> encoding.EncodedLength | None:
    if not body:
        violations.append(FieldViolation("body", "is required"))
        return None
    if "\x00" in body:
        violations.append(FieldViolation("body", "must not contain NUL characters"))
        return None
    length = encoding.measure(body)
    if length.segments > limits.max_segments:
        violations.append(FieldViolation(
            "body", f"needs {length.segments} segments; at most {limits.max_segments} allowed"))
    return length


def _check_sender(sender: str, violations: list[FieldViolation]) -> None:
    if not sender or _ALPHANUMERIC_SENDER.fullmatch(sender) or _SHORT_CODE.fullmatch(sender):
        return
    # The sender is stored and sent as given, so a number must already be in E.164 form.
    if sender.startswith("+") and phone.normalize(sender, "sender", None) == sender:
        return
    violations.append(FieldViolation(
        "sender", "must be up to 11 letters and digits, a short code or an E.164 number"))


def _check_text(field: str, value: str, limit: int, violations: list[FieldViolation]) -> None:
    if len(value) > limit:
        violations.append(FieldViolation(field, f"must be at most {limit} characters"))
    elif "\x00" in value:
        violations.append(FieldViolation(field, "must not contain NUL characters"))


def _check_metadata(metadata: dict[str, str], limits: Limits,
                    violations: list[FieldViolation]) -> None:
    if len(metadata) > limits.max_metadata_entries:
        violations.append(FieldViolation(
            "metadata", f"must have at most {limits.max_metadata_entries} entries"))
        return
    for key, value in metadata.items():
        if not key or len(key) > limits.max_metadata_key or "\x00" in key:
            violations.append(FieldViolation(
                f"metadata[{key[:64]!r}]",
                f"keys must be 1 to {limits.max_metadata_key} characters without NUL"))
        else:
            _check_text(f"metadata[{key!r}]", value, limits.max_metadata_value, violations)


def _check_idempotency_key(key: str, violations: list[FieldViolation]) -> None:
    if not key:
        violations.append(FieldViolation("idempotency_key", "is required"))
    elif not _KEY.fullmatch(key):
        violations.append(FieldViolation(
            "idempotency_key", "must be 1 to 255 printable ASCII characters without spaces"))
