"""Strict JSON for REST bodies: unknown fields are refused, not silently dropped.

Envoy's transcoder parses request bodies leniently (the proto3 JSON mapping
drops unknown fields), so a misspelt field would vanish and the call succeed
without it. Envoy asks this check first (its ext_authz filter sends us the
method, path and body); we parse the body strictly into the RPC's request
type and refuse what does not fit with a 400 and a google.rpc.Status naming
the field, before anything reaches the gRPC server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor

from smsgw.api import openapi

PREFIX = "/rest-check"
_UNKNOWN = re.compile(r'has no field named "([^"]+)"')
_WRONG_TYPE = re.compile(r"Failed to parse (\w+) field: (.*)")


@dataclass(frozen=True, slots=True)
class _Route:
    verb: str
    pattern: re.Pattern[str]
    request: Descriptor


def _routes() -> list[_Route]:
    found = []
    for method in (m for service in openapi.services() for m in service.methods):
        rule = openapi.http_rule(method)
        if rule is None or rule[2] != "*":
            continue
        verb, template, _ = rule
        regex = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
        regex = re.sub(r"\{\w+\}", r"[^/:]+", regex)
        found.append(_Route(verb.upper(), re.compile(f"^{regex}$"), method.input_type))
    return found


_ROUTES = _routes()


def check(verb: str, path: str, body: bytes) -> tuple[int, bytes]:
    """(200, b"") to let the request through, or (400, a JSON google.rpc.Status)."""
    path = path.removeprefix(PREFIX).split("?", 1)[0]
    route = next((r for r in _ROUTES if r.verb == verb and r.pattern.match(path)), None)
    if route is None or not body.strip():
        return 200, b""
    try:
        json_format.Parse(body.decode("utf-8"), message_factory.GetMessageClass(route.request)(),
                          ignore_unknown_fields=False)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        return 400, _status(str(exc))
    return 200, b""


def _status(reason: str) -> bytes:
    field, description = _violation(reason.split("\n", 1)[0])
    return json.dumps({
        "code": 3,
        "message": f"invalid request: {field}: {description}",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INVALID_ARGUMENT",
             "domain": "sms.ghasi.io"},
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "field_violations": [{"field": field, "description": description}]},
        ],
    }).encode()


def _violation(reason: str) -> tuple[str, str]:
    if unknown := _UNKNOWN.search(reason):
        return unknown[1], "is not a field of this request"
    if wrong := _WRONG_TYPE.search(reason):
        return wrong[1], f"has the wrong type ({wrong[2][:200]})"
    return "request_body", reason[:300]
