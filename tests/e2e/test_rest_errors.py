"""Every REST error is a JSON google.rpc.Status, including the ones Envoy answers itself."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from smsgw.api.rest_proxy import RestProxy
from smsgw.http import OpsServer
from tests.conftest import free_ports, new_tenant_key
from tests.e2e.test_rest import post_oversized

pytestmark = pytest.mark.e2e

BODY = b'{"to": "+16502530000", "body": "hi", "idempotency_key": "e-1"}'


def fetch(method: str, url: str, key: str | None = None, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, str, dict]:
    """(HTTP status, content type, the JSON body) of one request."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    if key:
        request.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, content_type, text = (response.status, response.headers["content-type"],
                                          response.read())
    except urllib.error.HTTPError as error:
        status, content_type, text = error.code, error.headers["content-type"], error.read()
    return status, content_type, json.loads(text)


async def raw(port: int, request: bytes) -> tuple[int, str, dict]:
    """A request urllib would refuse to send: read the whole answer, then close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers["content-type"], json.loads(body)


def assert_status(answer: tuple[int, str, dict], http: int, code: int, *named: str) -> dict:
    """The HTTP status, JSON, the google.rpc.Status shape, and a message naming ``named``."""
    status, content_type, body = answer
    assert (status, content_type.split(";")[0]) == (http, "application/json"), answer
    assert body["code"] == code and isinstance(body["message"], str), body
    assert all(part in body["message"] for part in named), body
    info = body["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo", body
    assert info["domain"] == "sms.ghasi.io" and info["reason"], body
    return body


def violations(body: dict) -> list[str]:
    bad = next(d for d in body["details"] if d["@type"].endswith("google.rpc.BadRequest"))
    return [v["field"] for v in bad["field_violations"]]


async def test_every_refusal_is_a_json_status(start_server, database_url):
    server = await start_server(rest_enabled=True, relay_enabled=False)
    key = await new_tenant_key(database_url)
    url, port = server.rest_url, int(server.rest_url.rsplit(":", 1)[1])

    async def call(method: str, path: str, **kwargs) -> tuple[int, str, dict]:
        return await asyncio.to_thread(fetch, method, url + path, key, **kwargs)

    # No RPC at the path: the transcoder's 404, rewritten by the proxy.
    assert_status(await call("GET", "/"), 404, 5, "/")
    assert_status(await call("GET", "/v1/nope"), 404, 5, "/v1/nope")
    assert_status(await call("POST", "/v1/nope", body=b"{}"), 404, 5, "/v1/nope")
    # A path with an RPC, but not for this method.
    body = assert_status(await call("DELETE", "/v1/messages"), 405, 12, "DELETE", "/v1/messages")
    assert body["message"].endswith("allowed: GET, POST")
    assert_status(await call("POST", "/v1/messages/abc", body=b"{}"), 405, 12, "POST")
    # Query parameters: an unknown name (ours), a value the transcoder cannot parse (its own).
    body = assert_status(await call("GET", "/v1/messages?foo=1"), 400, 3, "foo")
    assert violations(body) == ["foo"]
    assert violations(assert_status(await call("POST", "/v1/messages?bar=1", body=BODY),
                                    400, 3, "bar")) == ["bar"]
    assert_status(await call("GET", "/v1/messages?page_size=abc"), 400, 3, "page_size")
    assert_status(await call("GET", "/v1/messages?statuses=BOGUS"), 400, 3, "statuses")
    # Bodies: malformed, the wrong type, an unknown field, too large.
    body = assert_status(await call("POST", "/v1/messages", body=b"{not json"), 400, 3)
    assert violations(body) == ["request_body"]
    assert violations(assert_status(await call("POST", "/v1/messages", body=b'{"to": 5}'),
                                    400, 3, "to")) == ["to"]
    status, body = await post_oversized(url, key, 5_000_000)
    assert status == 400 and violations(body) == ["request_body"]
    # Malformed HTTP and oversized headers, refused by Envoy before any routing.
    assert_status(await raw(port, b"GARBAGE\r\n\r\n"), 400, 3)
    huge = {"x-huge": "a" * 70_000}
    assert violations(assert_status(await call("GET", "/v1/messages", headers=huge),
                                    400, 3, "headers")) == ["headers"]
    # The server's own errors keep their message and details.
    assert_status(await asyncio.to_thread(fetch, "GET", url + "/v1/messages"), 401, 16)
    missing = "/v1/messages/00000000-0000-7000-8000-000000000000"
    assert_status(await call("GET", missing), 404, 5, "message 00000000-")
    # And what is no error stays untouched.
    status, _, listed = await call("GET", "/v1/messages?page_size=5&pageSize=5")
    assert status == 200 and listed["messages"] == []


@pytest.mark.parametrize("check_answers", [True, False], ids=["grpc-down", "all-down"])
async def test_a_gateway_that_is_gone_is_a_json_503(tmp_path: Path, check_answers: bool):
    """Envoy alone: nothing listens at the gRPC port, and maybe not at the ops port either."""
    rest_port, dead_grpc, dead_ops = free_ports(3)
    ops = OpsServer("127.0.0.1:0", readiness=dict_of_nothing)
    await ops.start()
    proxy = RestProxy(f"127.0.0.1:{rest_port}", dead_grpc,
                      ops.port if check_answers else dead_ops, tmp_path)
    await proxy.start()
    try:
        answer = await asyncio.to_thread(fetch, "POST", f"http://127.0.0.1:{rest_port}/v1/messages",
                                         "sk_any", BODY)
        expected = "upstream connect error" if check_answers else "request check did not answer"
        assert_status(answer, 503, 14, expected)
        assert await asyncio.to_thread(page_status, f"http://127.0.0.1:{rest_port}/docs") == 200
    finally:
        await proxy.stop()
        await ops.stop()


async def dict_of_nothing() -> dict:
    return {}


def page_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return int(response.status)
