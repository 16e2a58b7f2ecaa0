"""The generated OpenAPI document covers the contract and holds together."""

from __future__ import annotations

import json
from typing import Any

from smsgw.api import openapi
from smsgw.settings import REPO_ROOT


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_annotated_rpc_has_an_operation_and_every_ref_resolves() -> None:
    doc = openapi.document()
    operations = {op["operationId"] for ops in doc["paths"].values() for op in ops.values()}
    methods = {m.name for service in openapi.services() for m in service.methods}
    assert operations == methods - {"SendMessages"}  # bidi: gRPC only
    assert {"SendMessage", "ListDeadLetters", "ReplayDeadLetters"} <= operations
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref


def test_the_rest_mapping_follows_the_http_rules() -> None:
    paths = openapi.document()["paths"]
    assert set(paths["/v1/messages"]) == {"get", "post"}
    assert paths["/v1/messages/{id}"]["get"]["parameters"][0] == {
        "name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    watch = paths["/v1/messages:watch"]["get"]
    assert "application/x-ndjson" in watch["responses"]["200"]["content"]
    assert {p["name"] for p in watch["parameters"]} == {"message_ids", "after_cursor"}
    message = openapi.document()["components"]["schemas"]["ghasi.sms.v1.Message"]["properties"]
    assert message["create_time"] == {"type": "string", "format": "date-time"}
    assert message["metadata"] == {"type": "object", "additionalProperties": {"type": "string"}}


def test_the_committed_document_is_current() -> None:
    committed = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text())
    assert committed == openapi.document()


def test_every_operation_asks_for_the_bearer_key() -> None:
    doc = openapi.document()
    assert doc["components"]["securitySchemes"]["bearer"] | {"description": ""} == {
        "type": "http", "scheme": "bearer", "description": ""}
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op.get("security", doc["security"]) == [{"bearer": []}]


def test_the_try_it_out_example_is_a_valid_request() -> None:
    from google.protobuf import json_format

    from smsgw.proto import sms_pb2

    media = openapi.document()["paths"]["/v1/messages"]["post"]["requestBody"]["content"]
    request = json_format.ParseDict(media["application/json"]["example"],
                                    sms_pb2.SendMessageRequest(), ignore_unknown_fields=False)
    assert request.to.startswith("+") and request.body and request.idempotency_key
