"""Checks of request fields that are not a send: ids, pages, filters, cursors."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import json
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

from smsgw.domain import phone
from smsgw.domain.errors import FieldViolation, ValidationFailed
from smsgw.domain.model import Cursor, MessageFilter, PageRequest
from smsgw.domain.status import MessageStatus

DEFAULT_PAGE, MAX_PAGE = 50, 1000
MAX_WATCH_IDS = 1000


def message_id(text: str, field: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValidationFailed.single(field, "must be a message id (a UUID)") from None


def message_ids(texts: Sequence[str]) -> list[uuid.UUID]:
    if len(texts) > MAX_WATCH_IDS:
        raise ValidationFailed.single("message_ids", f"at most {MAX_WATCH_IDS} ids")
    return list(dict.fromkeys(message_id(t, f"message_ids[{i}]") for i, t in enumerate(texts)))


def cursor(text: str) -> Cursor | None:
    if not text:
        return None
    decoded = Cursor.decode(text)
    if decoded is None:
        raise ValidationFailed.single("after_cursor", "is not a cursor this server issued")
    return decoded


def message_filter(statuses: Sequence[int], to: str, start: dt.datetime | None,
                   end: dt.datetime | None, default_region: str | None) -> MessageFilter:
    violations: list[FieldViolation] = []
    known = {int(s) for s in MessageStatus}
    for i, value in enumerate(statuses):
        if value not in known:
            violations.append(FieldViolation(f"statuses[{i}]", "is not a message status"))
    number = phone.normalize(to, "to", default_region) if to else ""
    if isinstance(number, FieldViolation):
        violations.append(number)
    if start and end and start >= end:
        violations.append(FieldViolation("create_time_end", "must be after create_time_start"))
    if violations:
        raise ValidationFailed(violations)
    assert isinstance(number, str)
    return MessageFilter(tuple(MessageStatus(s) for s in statuses), number, start, end)


def page(size: int, token: str, where: MessageFilter) -> PageRequest:
    if size < 0:
        raise ValidationFailed.single("page_size", "must not be negative")
    size = min(size or DEFAULT_PAGE, MAX_PAGE)
    if not token:
        return PageRequest(size, None)
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["f"] != _filter_hash(where):
            raise ValidationFailed.single("page_token", "the filter changed between pages")
        return PageRequest(size, (dt.datetime.fromisoformat(data["t"]), uuid.UUID(data["i"])))
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise ValidationFailed.single("page_token", "is not a page token this server issued") \
            from None


def next_page_token(created_at: dt.datetime, last_id: uuid.UUID, where: MessageFilter) -> str:
    data = {"t": created_at.isoformat(), "i": str(last_id), "f": _filter_hash(where)}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _filter_hash(where: MessageFilter) -> str:
    text = repr((sorted(int(s) for s in where.statuses), where.to,
                 where.created_from and where.created_from.isoformat(),
                 where.created_before and where.created_before.isoformat()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def webhook_url(url: str) -> str:
    """https anywhere; plain http only to a loopback address, for development."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValidationFailed.single("url", "is not a URL") from None
    if len(url) > 2048 or not parts.hostname or parts.scheme not in {"https", "http"}:
        raise ValidationFailed.single("url", "must be an absolute https:// URL")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ValidationFailed.single("url", "must use https (http only for loopback addresses)")
    return url


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def statuses(values: Sequence[int], field: str = "statuses") -> list[MessageStatus]:
    known = {int(s) for s in MessageStatus}
    for i, value in enumerate(values):
        if value not in known:
            raise ValidationFailed.single(f"{field}[{i}]", "is not a message status")
    return [MessageStatus(v) for v in dict.fromkeys(values)]
