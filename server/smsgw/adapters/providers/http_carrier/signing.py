"""Twilio's request signature, used by Twilio-style carriers to sign their callbacks.

The carrier signs the exact URL it called (query string included) followed by
every POST parameter, sorted by name, as name+value with no separators; the
key is the account's auth token. Pure: no I/O, so it is tested against the
carrier's published vector. It lives with the adapter: only this carrier
kind signs this way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

HEADER = "X-Twilio-Signature"


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """base64(HMAC-SHA1(auth_token, url + name1 + value1 + name2 + value2 ...))."""
    return _sign(auth_token, url, params)


def verify(auth_token: str, url: str, params: Mapping[str, str], signature: str) -> bool:
    """Constant-time check, so a forger learns nothing from how long a refusal takes."""
    expected = _sign(auth_token, url, params)
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header may hold anything.
    return bool(signature) and hmac.compare_digest(expected.encode(), signature.encode())


# Separate from signature(), which verify's argument of the same name hides.
def _sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    signed = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")

