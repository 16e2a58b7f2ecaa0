"""REST requests are checked strictly: bodies, query parameters and methods."""

from __future__ import annotations

import json

import pytest

from smsgw.api.rest_check import check


def violation(body: bytes, path: str = "/rest-check/v1/messages") -> tuple[int, str]:
    status, answer = check("POST", path, body)
    if status == 200:
        return status, ""
    details = json.loads(answer)["details"]
    return status, next(d for d in details if "BadRequest" in d["@type"])[
        "field_violations"][0]["field"]


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"to": "+16502530000", "body": "hi", "idempotency_key": "k"}', (200, "")),
    (b'{"to": "+16502530000", "bodyy": "hi"}', (400, "bodyy")),
    (b'{"to": 5}', (400, "to")),
    (b"{not json", (400, "request_body")),
    (b'{"metadata": {"a": 1}}', (400, "metadata")),
])
def test_send_bodies(body: bytes, expected: tuple[int, str]) -> None:
    assert violation(body) == expected


def test_nested_unknown_fields_and_other_routes() -> None:
    assert violation(b'{"requests": [{"to": "x", "zz": 1}]}',
                     "/rest-check/v1/messages:batchSend") == (400, "zz")
    assert violation(b'{"url": "https://x", "oops": true}',
                     "/rest-check/v1/webhookEndpoints") == (400, "oops")
    assert check("POST", "/rest-check/v1/messages/abc:cancel", b"{}") == (200, b"")


def refusal(verb: str, target: str) -> tuple[int, dict]:
    status, answer = check(verb, f"/rest-check{target}", b"")
    return status, json.loads(answer) if answer else {}


@pytest.mark.parametrize("target", [
    "/v1/messages?page_size=5&pageSize=5&statuses=MESSAGE_STATUS_SENT&statuses=x",
    "/v1/messages?create_time_start.seconds=5&page_size&=5",  # as lenient as the transcoder
    "/v1/messages/", "/v1/messages/abc", "/v1/messages:watch?message_ids=a&after_cursor=c",
    "/nope", "/v1/messages/a/b",  # no RPC there: the transcoder's 404, not ours
])
def test_what_the_transcoder_would_take_passes(target: str) -> None:
    assert refusal("GET", target) == (200, {})


def test_an_unknown_query_parameter_is_named() -> None:
    status, body = refusal("GET", "/v1/messages?page_size=5&foo=1")
    assert status == 400 and body["code"] == 3
    assert body["details"][1]["field_violations"] == [
        {"field": "foo", "description": "is not a field of this request"}]
    assert refusal("POST", "/v1/messages?%24alt=json")[1]["details"][1][
        "field_violations"][0]["field"] == "$alt"


@pytest.mark.parametrize(("verb", "target", "allowed"), [
    ("DELETE", "/v1/messages", "GET, POST"),
    ("POST", "/v1/messages/abc", "GET"),
    ("GET", "/v1/messages/abc:cancel", "POST"),
    ("PUT", "/v1/webhookEndpoints/abc", "DELETE"),
])
def test_a_wrong_method_is_405_naming_the_allowed_ones(verb: str, target: str,
                                                       allowed: str) -> None:
    status, body = refusal(verb, target)
    assert status == 405 and body["code"] == 12
    assert body["message"].endswith(f"allowed: {allowed}") and verb in body["message"]
    assert body["details"][0]["reason"] == "METHOD_NOT_ALLOWED"
