"""OpenAPI 3.1 for the REST surface, generated from the protos' google.api.http rules.

It describes what Envoy's transcoder actually serves: JSON field names as in
the proto (the transcoder prints them so), 64-bit integers as strings, enums
by name, timestamps as RFC 3339, errors as google.rpc.Status. ``make generate``
writes it to docs/openapi.json; CI fails when that file is stale.
"""

from __future__ import annotations

import re
from typing import Any

from google.api import annotations_pb2
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

from smsgw.proto import admin_pb2, sms_pb2

_F = FieldDescriptor
_SCALARS: dict[int, dict[str, Any]] = {
    _F.TYPE_STRING: {"type": "string"},
    _F.TYPE_BOOL: {"type": "boolean"},
    _F.TYPE_BYTES: {"type": "string", "format": "byte"},
    _F.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _F.TYPE_FLOAT: {"type": "number", "format": "float"},
    _F.TYPE_INT32: {"type": "integer", "format": "int32"},
    _F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    _F.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    _F.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    _F.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    # proto3 JSON writes 64-bit integers as strings.
    _F.TYPE_INT64: {"type": "string", "format": "int64"},
    _F.TYPE_SINT64: {"type": "string", "format": "int64"},
    _F.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    _F.TYPE_UINT64: {"type": "string", "format": "uint64"},
    _F.TYPE_FIXED64: {"type": "string", "format": "uint64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}},
                            "additionalProperties": True},
}
_PATH_PARAM = re.compile(r"\{(\w+)\}")
# Request bodies that work as they are, for the docs page's "Try it out" (an example
# generated from the schema alone would send "string" as the phone number).
_EXAMPLES: dict[str, dict[str, Any]] = {
    "SendMessage": {"to": "+16502530000", "body": "Hello from Ghasi",
                    "idempotency_key": "docs-example-1"},
}


def services() -> list[ServiceDescriptor]:
    """Every service REST reaches: the tenants' API and the operators'."""
    return [sms_pb2.DESCRIPTOR.services_by_name["SmsService"],
            admin_pb2.DESCRIPTOR.services_by_name["SmsAdminService"]]


def document(service: ServiceDescriptor | None = None) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for method in (m for s in ([service] if service else services()) for m in s.methods):
        rule = http_rule(method)
        if rule is None:
            continue
        verb, path, body = rule
        paths.setdefault(path, {})[verb] = _operation(method, path, body, schemas)
    _schema_ref(sms_pb2.DESCRIPTOR.pool.FindMessageTypeByName("google.rpc.Status"), schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Ghasi SMS Gateway", "version": "v1",
                 "description": "REST mapping of ghasi.sms.v1.SmsService and SmsAdminService "
                                "(generated from the protos; the gRPC contract is the source "
                                "of truth). Every error is a JSON google.rpc.Status with the "
                                "HTTP status matching its code."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        # The tenants' API first on the docs page, the operators' after it.
        "tags": [{"name": s.name} for s in ([service] if service else services())],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "Your API key (`sk_...`): sent as "
                                                          "`authorization: Bearer <key>`."}},
            "schemas": dict(sorted(schemas.items())),
        },
    }


def http_rule(method: MethodDescriptor) -> tuple[str, str, str] | None:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule = options.Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    if verb is None or verb == "custom":
        return None
    return verb, getattr(rule, verb), rule.body


def _operation(method: MethodDescriptor, path: str, body: str,
               schemas: dict[str, Any]) -> dict[str, Any]:
    request = method.input_type
    in_path = set(_PATH_PARAM.findall(path))
    operation: dict[str, Any] = {
        "operationId": method.name,
        "tags": [method.containing_service.name],
        "parameters": [_path_parameter(request.fields_by_name[name]) for name in sorted(in_path)],
        "responses": _responses(method, schemas),
    }
    if body == "*":
        media = {"schema": _schema_ref(request, schemas)}
        if method.name in _EXAMPLES:
            media["example"] = _EXAMPLES[method.name]
        operation["requestBody"] = {"required": True, "content": {"application/json": media}}
    else:
        operation["parameters"] += [_query_parameter(f) for f in request.fields
                                    if f.name not in in_path and _queryable(f)]
    return operation


def _responses(method: MethodDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    output = _schema_ref(method.output_type, schemas)
    if method.server_streaming:
        ok = {"description": "A stream: one JSON object per line.",
              "content": {"application/x-ndjson": {"schema": output}}}
    else:
        ok = {"description": "OK", "content": {"application/json": {"schema": output}}}
    status = {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}
    error = {"description": "An error: the HTTP status matches the gRPC code.",
             "content": {"application/json": status}}
    refused = {"description": "Invalid input: a value the server refuses, malformed JSON, a "
                              "wrong type, an unknown field or query parameter. The "
                              "message names the field.",
               "content": {"application/json": status}}
    return {"200": ok, "400": refused, "default": error}


def _path_parameter(field: FieldDescriptor) -> dict[str, Any]:
    return {"name": field.name, "in": "path", "required": True, "schema": _scalar(field)}


def _query_parameter(field: FieldDescriptor) -> dict[str, Any]:
    schema = _scalar(field)
    if field.is_repeated:
        schema = {"type": "array", "items": schema}
    return {"name": field.name, "in": "query", "required": False, "schema": schema,
            "explode": True}


def _queryable(field: FieldDescriptor) -> bool:
    if field.type != FieldDescriptor.TYPE_MESSAGE:
        return True
    name = _message(field).full_name
    return name in _WELL_KNOWN and name != "google.protobuf.Any"


def _message(field: FieldDescriptor) -> Descriptor:
    assert field.message_type is not None
    return field.message_type


def _scalar(field: FieldDescriptor) -> dict[str, Any]:
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return _enum(field.enum_type)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return dict(_WELL_KNOWN[_message(field).full_name])
    return dict(_SCALARS[field.type])


def _enum(enum: EnumDescriptor) -> dict[str, Any]:
    return {"type": "string", "enum": [value.name for value in enum.values]}


def _schema_ref(message: Descriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    name = message.full_name
    if name in _WELL_KNOWN:
        return dict(_WELL_KNOWN[name])
    if name not in schemas:
        schemas[name] = {}  # placeholder first: messages may refer to themselves
        schemas[name] = {
            "type": "object",
            "properties": {f.name: _field_schema(f, schemas) for f in message.fields},
        }
    return {"$ref": f"#/components/schemas/{name}"}


def _field_schema(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if _is_map(field):
        value = _message(field).fields_by_name["value"]
        return {"type": "object", "additionalProperties": _single(value, schemas)}
    single = _single(field, schemas)
    if field.is_repeated:
        return {"type": "array", "items": single}
    return single


def _single(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _schema_ref(_message(field), schemas)
    return _scalar(field)


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and _message(field).GetOptions().map_entry
