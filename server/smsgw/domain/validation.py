"""Turns a raw send request into a Submission, or names every field that is wrong."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

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


def validate(request: SendRequest, limits: Limits) -> Submission:
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
    if violations:
        raise ValidationFailed(violations)
    assert isinstance(to, str) and length is not None
    return Submission(
        to=to, body=request.body, sender=request.sender,
        client_reference=request.client_reference, metadata=metadata,
        idempotency_key=request.idempotency_key, encoding=length.encoding,
        segments=length.segments,
        fingerprint=fingerprint(to, request.body, request.sender,
                                request.client_reference, metadata, traffic_class),
        traffic_class=traffic_class,
    )


def fingerprint(to: str, body: str, sender: str, reference: str,
                metadata: Mapping[str, str], traffic_class: str = DEFAULT_TRAFFIC_CLASS) -> str:
    """Identifies a payload, so a reused idempotency key can be told from a replay."""
    digest = hashlib.blake2b(digest_size=16)
    # The default class adds nothing, so fingerprints stored before classes existed still match.
    extra = () if traffic_class == DEFAULT_TRAFFIC_CLASS else ("\x01class", traffic_class)
    for part in (to, body, sender, reference, *_flatten(metadata), *extra):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


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
