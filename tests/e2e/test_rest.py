"""REST through Envoy's transcoder, driven with an ordinary HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request

import pytest

from tests.conftest import new_tenant_key

pytestmark = pytest.mark.e2e


def call(method: str, url: str, key: str | None, body: object = None,
         raw: bytes | None = None) -> tuple[int, dict | list]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        text, status = error.read().decode(), error.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        pass
    try:  # a server stream: newline-delimited JSON
        return status, [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
        return status, {"text": text}  # not JSON: a failure of its own (see test_rest_errors.py)


async def post_oversized(base_url: str, key: str, size: int) -> tuple[int, dict]:
    """Streams a huge body, and stops writing once the proxy has answered (as curl does)."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write((f"POST /v1/messages HTTP/1.1\r\nhost: {host}\r\n"
                  f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n"
                  f"content-length: {size}\r\n\r\n").encode())

    async def body() -> None:
        chunk = b"a" * 65536
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()

    sending = asyncio.create_task(body())
    try:
        async with asyncio.timeout(30):
            status = int((await reader.readline()).split()[1])
            length = 0
            while line := (await reader.readline()).strip():
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            answer = json.loads(await reader.readexactly(length))
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return status, answer


async def rest(*args, **kwargs):
    return await asyncio.to_thread(call, *args, **kwargs)


async def test_rest_reaches_every_annotated_rpc(start_server, database_url):
    server = await start_server(rest_enabled=True)
    key = await new_tenant_key(database_url)
    base = f"{server.rest_url}/v1/messages"

    status, sent = await rest("POST", base, key, {
        "to": "+1 650 253 0000", "body": "hello over REST", "idempotency_key": "rest-1",
        "metadata": {"order": "42"}})
    assert status == 200 and sent["to"] == "+16502530000" and sent["metadata"] == {"order": "42"}

    status, events = await rest("GET", f"{base}:watch?message_ids={sent['id']}", key)
    assert status == 200
    assert [e["event"]["status"] for e in events[:-1]] == [
        "MESSAGE_STATUS_QUEUED", "MESSAGE_STATUS_SENDING", "MESSAGE_STATUS_SENT",
        "MESSAGE_STATUS_DELIVERED"]
    assert events[-1]["end"]["reason"] == "WATCH_END_REASON_ALL_FINAL"

    status, got = await rest("GET", f"{base}/{sent['id']}", key)
    assert status == 200 and got["status"] == "MESSAGE_STATUS_DELIVERED"
    status, listed = await rest("GET", f"{base}?statuses=MESSAGE_STATUS_DELIVERED&page_size=5",
                                key)
    assert status == 200 and [m["id"] for m in listed["messages"]] == [sent["id"]]
    status, batch = await rest("POST", f"{base}:batchSend", key, {"requests": [
        {"to": "+16502530000", "body": "a", "idempotency_key": "rest-2"},
        {"to": "nope", "body": "b", "idempotency_key": "rest-3"}]})
    assert status == 200
    assert "message" in batch["results"][0] and batch["results"][1]["error"]["code"] == 3
    status, canceled = await rest("POST", f"{base}/{sent['id']}:cancel", key, {})
    assert status == 400 and canceled["message"].startswith("message is DELIVERED")  # 9 -> 400


async def test_rest_errors_are_http_statuses_with_a_json_status_body(start_server, database_url):
    server = await start_server(rest_enabled=True, relay_enabled=False)
    key = await new_tenant_key(database_url)
    base = f"{server.rest_url}/v1/messages"

    status, body = await rest("POST", base, key, {"to": "+16502530000", "body": ""})
    assert status == 400
    violations = next(d for d in body["details"] if d["@type"].endswith("BadRequest"))
    assert [v["field"] for v in violations["field_violations"]] == ["body", "idempotency_key"]

    assert (await rest("GET", base, None))[0] == 401
    assert (await rest("GET", base, "sk_wrong"))[0] == 401
    assert (await rest("GET", f"{base}/00000000-0000-7000-8000-000000000000", key))[0] == 404
    first = {"to": "+16502530000", "body": "one", "idempotency_key": "same"}
    assert (await rest("POST", base, key, first))[0] == 200
    status, body = await rest("POST", base, key, {**first, "body": "two"})
    assert status == 409
    assert body["details"][0]["reason"] == "IDEMPOTENCY_KEY_REUSED"
    assert (await rest("GET", f"{base}?no_such_filter=1", key))[0] == 400
    for bad_body, field in ((b"{not json", "request_body"),
                            (b'{"to": 5, "body": "x", "idempotency_key": "t"}', "to"),
                            (b'{"to": "+16502530000", "bodyy": "x", "idempotency_key": "u"}',
                             "bodyy")):
        status, body = await rest("POST", base, key, raw=bad_body)
        violations = next(d for d in body["details"] if d["@type"].endswith("BadRequest"))
        assert status == 400 and violations["field_violations"][0]["field"] == field
    status, body = await post_oversized(server.rest_url, key, 5_000_000)
    assert status == 400 and body["details"][1]["field_violations"][0]["field"] == "request_body"
    status, listed = await rest("GET", base, key)
    assert status == 200 and len(listed["messages"]) == 1  # nothing bad was written


def get(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.headers["content-type"], response.read()


async def test_openapi_document_and_docs_page_are_served(start_server, database_url):
    """The document as committed; Swagger UI's files, served by the proxy itself."""
    from smsgw.settings import REPO_ROOT

    server = await start_server(rest_enabled=True, relay_enabled=False)
    status, served = await rest("GET", f"{server.rest_url}/openapi.json", None)
    committed = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text())
    assert status == 200 and served == committed
    content_type, page = await asyncio.to_thread(get, f"{server.rest_url}/docs")
    assert content_type.startswith("text/html")
    assert b"<title>Ghasi SMS Gateway - REST API</title>" in page and b"http" not in page
    static = REPO_ROOT / "server" / "smsgw" / "api" / "static"
    for name, kind, source in (("swagger-ui-bundle.js", "text/javascript", "swagger-ui"),
                               ("swagger-ui.css", "text/css", "swagger-ui"),
                               ("docs.js", "text/javascript", ".")):
        assert f'"/docs/{name}"'.encode() in page
        content_type, body = await asyncio.to_thread(get, f"{server.rest_url}/docs/{name}")
        assert content_type.startswith(kind) and body == (static / source / name).read_bytes()


async def test_property_based_fuzzing_finds_no_5xx_and_no_schema_breaks(
        start_server, database_url, tmp_path):
    """schemathesis against the served OpenAPI document, bounded and seeded.

    The watch stream is left out: a tenant-wide watch never ends by design.
    """
    import subprocess
    import sys
    from pathlib import Path

    server = await start_server(rest_enabled=True, relay_enabled=False)
    key = await new_tenant_key(database_url)
    cli = Path(sys.executable).with_name("schemathesis")
    run = await asyncio.to_thread(
        subprocess.run,
        [str(cli), "run", f"{server.rest_url}/openapi.json", "-H", f"authorization: Bearer {key}",
         "--max-examples", "25", "--seed", "7", "--exclude-path-regex", ":watch",
         "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
         "--request-timeout", "10"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
