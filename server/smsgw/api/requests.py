"""Checks of request fields that are not a send: ids, pages, filters, cursors."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import json
import re
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

from smsgw.domain import phone
from smsgw.domain.errors import FieldViolation, ValidationFailed
from smsgw.domain.model import Cursor, MessageFilter, PageRequest
from smsgw.domain.status import MessageStatus

DEFAULT_PAGE, MAX_PAGE = 50, 1000
MAX_WATCH_IDS = 1000
FOREIGN_PAGE = "is not a page token this server issued"

# The forms uuid.UUID reads, without the ones int() lets through ("0x", spaces, "_", digits
# of other scripts): an id is ASCII hex, hyphens allowed, braces or a urn prefix at most.
_UUID = re.compile(r"(?:urn:)?(?:uuid:)?\{?[0-9A-Fa-f-]+\}?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def uuid_value(text: str, field: str, description: str = "must be a UUID") -> uuid.UUID:
    if _UUID.fullmatch(text):
        try:
            return uuid.UUID(text)
        except ValueError:
            pass
    raise ValidationFailed.single(field, description)


def message_id(text: str, field: str = "id") -> uuid.UUID:
    return uuid_value(text, field, "must be a message id (a UUID)")


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
                   end: dt.datetime | None, default_region: str | None,
                   scheduled_only: bool = False) -> MessageFilter:
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
    return MessageFilter(tuple(MessageStatus(s) for s in statuses), number, start, end,
                         scheduled_only)


def page_size(size: int, default: int, most: int) -> int:
    """0 means the default; more than the most is capped, not refused (AIP-158)."""
    if size < 0:
        raise ValidationFailed.single("page_size", "must not be negative")
    return min(size or default, most)


def page(size: int, token: str, where: MessageFilter) -> PageRequest:
    size = page_size(size, DEFAULT_PAGE, MAX_PAGE)
    if not token:
        return PageRequest(size, None)
    data = token_data(token)
    if not isinstance(data, dict) or not {"t", "i", "f"} <= data.keys():
        raise ValidationFailed.single("page_token", FOREIGN_PAGE)
    if data["f"] != _filter_hash(where):
        raise ValidationFailed.single("page_token", "the filter changed between pages")
    return PageRequest(size, page_position(data["t"], data["i"]))


def token_data(token: str) -> object:
    """The JSON inside a page token, whatever its shape; the caller checks the shape."""
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    # RecursionError: a token of deeply nested arrays.
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise ValidationFailed.single("page_token", FOREIGN_PAGE) from None


def page_position(when: object, last_id: object) -> tuple[dt.datetime, uuid.UUID]:
    """Where a page token resumes: a UTC time and an id, exactly as this server writes them."""
    if isinstance(when, str) and isinstance(last_id, str) and _UUID.fullmatch(last_id):
        try:
            stamp = dt.datetime.fromisoformat(when)
            if stamp.utcoffset() == dt.timedelta(0):
                return stamp, uuid.UUID(last_id)
        except ValueError:
            pass
    raise ValidationFailed.single("page_token", FOREIGN_PAGE)


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
    if _CONTROL.search(url):
        raise ValidationFailed.single("url", "must not contain control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number 0-65535 raises here
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


def plain_text(value: str, field: str) -> str:
    """A free-text filter: the database refuses NUL, so it is refused here, by name."""
    if "\x00" in value:
        raise ValidationFailed.single(field, "must not contain NUL characters")
    return value


def statuses(values: Sequence[int], field: str = "statuses") -> list[MessageStatus]:
    known = {int(s) for s in MessageStatus}
    for i, value in enumerate(values):
        if value not in known:
            raise ValidationFailed.single(f"{field}[{i}]", "is not a message status")
    return [MessageStatus(v) for v in dict.fromkeys(values)]
