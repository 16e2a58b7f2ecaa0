"""Twilio's request signature, pinned to the vector Twilio's own SDKs test against."""

from __future__ import annotations

import base64
import hmac

from smsgw.adapters.providers.http_carrier import signing as carrier_signature

# The published example (twilio-php/-csharp/-python RequestValidator tests): token 12345.
TOKEN = "12345"
URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def independent(token: str, url: str, params: dict[str, str]) -> str:
    """A second implementation, written differently, to cross-check arbitrary inputs."""
    message = url
    for key, value in sorted(params.items()):
        message += f"{key}{value}"
    return base64.b64encode(hmac.digest(token.encode(), message.encode(), "sha1")).decode()


def test_matches_the_published_vector() -> None:
    assert carrier_signature.signature(TOKEN, URL, PARAMS) == EXPECTED


def test_parameter_order_does_not_matter() -> None:
    reordered = dict(reversed(list(PARAMS.items())))
    assert carrier_signature.signature(TOKEN, URL, reordered) == EXPECTED


def test_verify_accepts_the_published_vector() -> None:
    assert carrier_signature.verify(TOKEN, URL, PARAMS, EXPECTED)


def test_verify_rejects_any_change() -> None:
    assert not carrier_signature.verify("54321", URL, PARAMS, EXPECTED)
    assert not carrier_signature.verify(TOKEN, URL + "&baz=3", PARAMS, EXPECTED)
    assert not carrier_signature.verify(TOKEN, URL, {**PARAMS, "Digits": "9999"}, EXPECTED)
    assert not carrier_signature.verify(TOKEN, URL, {**PARAMS, "Extra": ""}, EXPECTED)
    assert not carrier_signature.verify(TOKEN, URL, PARAMS, EXPECTED.lower())
    assert not carrier_signature.verify(TOKEN, URL, PARAMS, "")


def test_verify_refuses_non_ascii_signatures_without_raising() -> None:
    assert not carrier_signature.verify(TOKEN, URL, PARAMS, "invalid 王")


def test_agrees_with_an_independent_implementation() -> None:
    params = {"MessageSid": "SM" + "ab" * 16, "MessageStatus": "delivered", "ErrorCode": "",
              "Body": "héllo wörld ✓", "To": "+447700900123"}
    url = "http://127.0.0.1:9464/callbacks/twilio?ref=0f0e"
    assert carrier_signature.signature("s3cr3t", url, params) == independent("s3cr3t", url, params)
    assert len(carrier_signature.signature("s3cr3t", url, params)) == 28  # base64 of SHA-1
