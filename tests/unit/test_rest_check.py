"""REST bodies are parsed strictly against the RPC's request type."""

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
    assert check("GET", "/rest-check/v1/messages?x=1", b"") == (200, b"")
