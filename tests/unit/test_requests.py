"""Request fields that are not a send: timestamps, ids, page sizes and tokens, filters, URLs."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from smsgw.api import convert, requests
from smsgw.domain.errors import ValidationFailed
from smsgw.domain.model import MessageFilter
from smsgw.domain.status import MessageStatus

UTC = dt.UTC
ID = uuid.UUID("0b6c2d0e-8a51-4f6e-9a61-3f3c54f2d7a1")


def _refused(call, *args: object) -> list[tuple[str, str]]:
    with pytest.raises(ValidationFailed) as info:
        call(*args)
    return [(v.field, v.description) for v in info.value.violations]


def _field(call, *args: object) -> list[str]:
    return [field for field, _ in _refused(call, *args)]


@pytest.mark.parametrize(("seconds", "nanos", "expected"), [
    (0, 0, dt.datetime(1970, 1, 1, tzinfo=UTC)),
    (convert.SECONDS_MIN, 0, dt.datetime.min.replace(tzinfo=UTC)),
    (convert.SECONDS_MAX, 999_999_000, dt.datetime.max.replace(tzinfo=UTC)),
    # The last nanoseconds of 9999 round up to nothing a datetime holds: the latest it does.
    (convert.SECONDS_MAX, 999_999_999, dt.datetime.max.replace(tzinfo=UTC)),
    (1_700_000_000, 123_456_789, dt.datetime(2023, 11, 14, 22, 13, 20, 123_457, tzinfo=UTC)),
    (1_700_000_000, 1, dt.datetime(2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC)),
    (-1, 999_999_000, dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
])
def test_a_timestamp_in_range_becomes_the_microsecond_at_or_after_it(seconds, nanos, expected):
    assert convert.to_datetime(Timestamp(seconds=seconds, nanos=nanos), "t") == expected


@pytest.mark.parametrize(("seconds", "nanos"), [
    (convert.SECONDS_MAX + 1, 0),  # 10000-01-01
    (convert.SECONDS_MIN - 1, 0),  # a second before 0001-01-01 ("year 0")
    (2**63 - 1, 0),
    (-2**63, 0),
    (0, -1),
    (0, 1_000_000_000),
    (0, 2**31 - 1),
    (0, -2**31),
])
def test_a_timestamp_out_of_range_is_refused_naming_its_field(seconds, nanos):
    stamp = Timestamp(seconds=seconds, nanos=nanos)
    assert _field(convert.to_datetime, stamp, "create_time_end") == ["create_time_end"]


@pytest.mark.parametrize("text", [
    str(ID), str(ID).upper(), ID.hex, f"{{{ID}}}", f"urn:uuid:{ID}",
])
def test_ids_in_the_forms_of_a_uuid_are_read(text):
    assert requests.uuid_value(text, "id") == ID
    assert requests.message_id(text) == ID


@pytest.mark.parametrize("text", [
    "", "x", str(ID)[:-1], str(ID) + "0",
    "0x" + "1" * 30,  # int() reads a 0x prefix
    " " + "1" * 31, "1" * 31 + "\n",  # and surrounding whitespace
    "1_" + "1" * 30,  # and underscores
    "\u0661" * 32,  # and digits of other scripts
    "+" + "1" * 31,
    str(ID) + "\x00",
])
def test_anything_else_is_not_an_id(text):
    assert _field(requests.message_id, text, "message_ids[3]") == ["message_ids[3]"]
    assert _field(requests.uuid_value, text, "filter.tenant_id") == ["filter.tenant_id"]


@pytest.mark.parametrize(("size", "expected"), [(0, 50), (1, 1), (500, 500), (501, 500),
                                                (2**31 - 1, 500)])
def test_a_page_size_defaults_and_is_capped(size, expected):
    assert requests.page_size(size, 50, 500) == expected


@pytest.mark.parametrize("size", [-1, -2**31])
def test_a_negative_page_size_is_refused(size):
    assert _field(requests.page_size, size, 50, 500) == ["page_size"]


WHERE = MessageFilter(statuses=(MessageStatus.QUEUED,))
LAST = dt.datetime(2024, 5, 1, 12, 0, 0, 123_456, tzinfo=UTC)


def _token(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _issued() -> dict[str, object]:
    return json.loads(base64.urlsafe_b64decode(requests.next_page_token(LAST, ID, WHERE)))


def test_a_page_token_resumes_where_the_last_page_ended():
    page = requests.page(10, requests.next_page_token(LAST, ID, WHERE), WHERE)
    assert (page.size, page.after) == (10, (LAST, ID))


def test_a_page_token_for_another_filter_is_refused():
    token = requests.next_page_token(LAST, ID, WHERE)
    assert _refused(requests.page, 10, token, MessageFilter()) == [
        ("page_token", "the filter changed between pages")]


@pytest.mark.parametrize("token", [
    "garbage", "%%%", "\u00e9t\u00e9", _token(None), _token(5), _token([1, 2]), _token({}),
    base64.urlsafe_b64encode(b"[" * 100_000).decode(),  # deeper than json recurses
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_a_token_this_server_never_wrote_is_refused(token):
    assert _refused(requests.page, 10, token, WHERE) == [
        ("page_token", requests.FOREIGN_PAGE)]


@pytest.mark.parametrize("change", [
    {"i": 5}, {"i": [1]}, {"i": None}, {"i": "0x" + "1" * 30}, {"i": "x"},
    {"t": 5}, {"t": None}, {"t": "yesterday"},
    {"t": "2024-05-01T12:00:00"},  # no offset: never written by this server
    {"t": "9999-12-31T23:59:59-14:00"},  # UTC would be year 10000
])
def test_a_tampered_token_is_refused(change):
    token = _token({**_issued(), **change})
    assert _refused(requests.page, 10, token, WHERE) == [
        ("page_token", requests.FOREIGN_PAGE)]


def test_statuses_must_be_known_numbers():
    assert requests.statuses([3, 1, 3]) == [MessageStatus.SENT, MessageStatus.QUEUED]
    for unknown in (0, -1, 10, 2**31 - 1):
        assert _field(requests.statuses, [1, unknown]) == ["statuses[1]"]


def test_a_message_filter_names_every_unknown_status_and_a_reversed_range():
    start, end = LAST, LAST - dt.timedelta(seconds=1)
    assert _field(requests.message_filter, [0, 1, 99], "", start, end, None) == [
        "statuses[0]", "statuses[2]", "create_time_end"]


@pytest.mark.parametrize(("url", "description"), [
    ("https://example.com/\x00", "must not contain control characters"),
    ("https://example.com/a\nb", "must not contain control characters"),
    ("\x01https://example.com/", "must not contain control characters"),
    ("https://example.com:x/", "is not a URL"),
    ("https://example.com:70000/", "is not a URL"),
    ("https://[::1/", "is not a URL"),
    ("ftp://example.com/", "must be an absolute https:// URL"),
    ("http://example.com/", "must use https (http only for loopback addresses)"),
])
def test_a_webhook_url_must_be_one_a_delivery_can_use(url, description):
    assert _refused(requests.webhook_url, url) == [("url", description)]


def test_webhook_urls_that_are_fine():
    for url in ("https://example.com/hook", "https://example.com:8443/hook?x=1",
                "http://127.0.0.1:9000/", "http://localhost/", "http://[::1]:80/"):
        assert requests.webhook_url(url) == url


def test_free_text_filters_refuse_only_nul():
    assert requests.plain_text("SMPP_THROTTLED", "filter.error_code") == "SMPP_THROTTLED"
    assert requests.plain_text("", "filter.provider") == ""
    assert _field(requests.plain_text, "smsc\x00", "filter.provider") == ["filter.provider"]


def test_an_unknown_traffic_class_number_stays_visible_to_validation():
    assert convert.traffic_class_name(0) == ""
    assert convert.traffic_class_name(2) == "otp"
    assert convert.traffic_class_name(99) == "unknown (99)"
    assert convert.traffic_class_name(-1) == "unknown (-1)"
