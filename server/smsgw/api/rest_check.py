"""Strict REST requests: wrong methods, unknown query parameters and unknown body fields.

Envoy's transcoder parses request bodies leniently (the proto3 JSON mapping
drops unknown fields), so a misspelt field would vanish and the call succeed
without it; it answers a wrong method as an unknown path, and an unknown
query parameter with a bare sentence. Envoy asks this check first (its
ext_authz filter sends us the method, path and body); we parse the body
strictly into the RPC's request type and refuse what does not fit with a
google.rpc.Status naming the field (400), or the method (405), before
anything reaches the gRPC server. What we let through and Envoy still
refuses is rewritten to the same JSON shape by the proxy's local replies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor

from smsgw.api import openapi
from smsgw.api.errors import DOMAIN

PREFIX = "/rest-check"
_UNKNOWN = re.compile(r'has no field named "([^"]+)"')
_WRONG_TYPE = re.compile(r"Failed to parse (\w+) field: (.*)")
_NOT_A_FIELD = "is not a field of this request"


@dataclass(frozen=True, slots=True)
class _Route:
    verb: str
    pattern: re.Pattern[str]
    request: Descriptor
    has_body: bool


def _routes() -> list[_Route]:
    found = []
    for method in (m for service in openapi.services() for m in service.methods):
        rule = openapi.http_rule(method)
        if rule is None:
            continue
        verb, template, body = rule
        regex = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
        regex = re.sub(r"\{\w+\}", r"[^/:]+", regex)
        found.append(_Route(verb.upper(), re.compile(f"^{regex}$"), method.input_type,
                            body == "*"))
    return found


_ROUTES = _routes()


def check(verb: str, path: str, body: bytes) -> tuple[int, bytes]:
    """(200, b"") to let the request through, or (400 or 405, a JSON google.rpc.Status)."""
    path, _, query = path.removeprefix(PREFIX).partition("?")
    # The transcoder ignores a trailing slash; an unknown path is its 404 to answer.
    routes = [r for r in _ROUTES if r.pattern.match(path.rstrip("/") or "/")]
    route = next((r for r in routes if r.verb == verb), None)
    if route is None:
        return (405, _not_allowed(verb, path, routes)) if routes else (200, b"")
    if unknown := _unknown_parameter(route.request, query):
        return 400, _invalid(unknown, _NOT_A_FIELD)
    if not route.has_body or not body.strip():
        return 200, b""
    try:
        json_format.Parse(body.decode("utf-8"), message_factory.GetMessageClass(route.request)(),
                          ignore_unknown_fields=False)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        return 400, _invalid(*_violation(str(exc).split("\n", 1)[0]))
    return 200, b""


def status(code: int, reason: str, message: str,
           violations: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """A google.rpc.Status as the transcoder prints it: the one error shape REST answers."""
    details: list[dict[str, Any]] = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": DOMAIN}]
    if violations:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest", "field_violations": [
            {"field": field, "description": description} for field, description in violations]})
    return {"code": code, "message": message, "details": details}


def _unknown_parameter(request: Descriptor, query: str) -> str | None:
    """The first query parameter naming no field, by proto or JSON name as the transcoder takes."""
    known = {f.name for f in request.fields} | {f.json_name for f in request.fields}
    names = (name for name, _ in parse_qsl(query, keep_blank_values=True))
    return next((n for n in names if n and n.split(".", 1)[0] not in known), None)


def _not_allowed(verb: str, path: str, routes: list[_Route]) -> bytes:
    allowed = ", ".join(sorted({r.verb for r in routes}))
    message = f"method {verb} is not allowed on {path}; allowed: {allowed}"
    return json.dumps(status(12, "METHOD_NOT_ALLOWED", message)).encode()


def _invalid(field: str, description: str) -> bytes:
    return json.dumps(status(3, "INVALID_ARGUMENT", f"invalid request: {field}: {description}",
                             [(field, description)])).encode()


def _violation(reason: str) -> tuple[str, str]:
    if unknown := _UNKNOWN.search(reason):
        return unknown[1], _NOT_A_FIELD
    if wrong := _WRONG_TYPE.search(reason):
        return wrong[1], f"has the wrong type ({wrong[2][:200]})"
    return "request_body", reason[:300]
