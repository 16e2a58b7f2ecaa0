"""A tiny HTTP listener for /metrics, /healthz, /readyz and carriers' status callbacks.

Operations traffic only (a scrape every few seconds, probes, one callback or
two per message), so a minimal asyncio server beats another web framework in
the dependency list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Protocol
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from smsgw.api import rest_check

log = logging.getLogger(__name__)

# name -> (ok, what is wrong): the stores and every background loop.
ReadinessCheck = Callable[[], Awaitable[dict[str, tuple[bool, str]]]]
MAX_BODY = 5 * 1024 * 1024
CALLBACK_PREFIX = "/callbacks/"
_SIGNATURE_HEADER = "x-twilio-signature"


class CallbackHandler(Protocol):
    """A carrier adapter that takes its status callbacks over HTTP.

    Synchronous: checking a signature and handing a receipt to a sink never
    waits, and a sync call cannot be left half done by a dropped connection.
    """

    def handle_callback(self, query: str, form: Mapping[str, str], signature: str | None) -> int:
        """Returns the HTTP status to answer with (204 taken, 403 bad signature...)."""
        ...


class OpsServer:
    def __init__(self, address: str, readiness: ReadinessCheck, *,
                 callbacks: Mapping[str, CallbackHandler] | None = None) -> None:
        self._host, _, port = address.rpartition(":")
        self._port = int(port)
        self._readiness = readiness
        # Held, not copied, and read per request: a provider whose callback URL names
        # the port this server bound (port 0) can be registered after start().
        self._callbacks: Mapping[str, CallbackHandler] = {} if callbacks is None else callbacks
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request_line = await reader.readline()
                length, signature = await self._headers(reader)
                payload = await reader.readexactly(length) if length else b""
            parts = request_line.decode("latin-1").split()
            verb, target = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            if target.startswith(rest_check.PREFIX):
                code, body = rest_check.check(verb, target, payload)
                status = f"{code} {HTTPStatus(code).phrase}"
                content_type = "application/json"
            elif target.startswith(CALLBACK_PREFIX):
                status, content_type, body = self._callback(verb, target, payload, signature)
            else:
                status, content_type, body = await self._route(target.split("?")[0])
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    async def _headers(reader: asyncio.StreamReader) -> tuple[int, str | None]:
        """The body's length and the carrier's signature header: all we ever need."""
        length, signature = 0, None
        while line := (await reader.readline()).strip():
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == _SIGNATURE_HEADER:
                signature = value.strip()
        if length > MAX_BODY:
            raise ValueError("body too large")
        return length, signature

    def _callback(self, verb: str, target: str, payload: bytes,
                  signature: str | None) -> tuple[str, str, bytes]:
        path, _, query = target.partition("?")
        handler = self._callbacks.get(path.removeprefix(CALLBACK_PREFIX))
        if handler is None:
            return "404 Not Found", "text/plain", b"not found\n"
        if verb != "POST":
            return "405 Method Not Allowed", "text/plain", b"POST only\n"
        try:
            form = dict(parse_qsl(payload.decode(), keep_blank_values=True, max_num_fields=200))
        except ValueError:  # not UTF-8, or absurdly many fields
            return "400 Bad Request", "text/plain", b"bad form body\n"
        try:
            code = handler.handle_callback(query, form, signature)
        except Exception:
            # Answer anyway: a 5xx tells the carrier to try again, silence tells it nothing.
            log.exception("carrier callback failed", extra={"path": path})
            code = 500
        return f"{code} {HTTPStatus(code).phrase}", "text/plain", b""

    async def _route(self, path: str) -> tuple[str, str, bytes]:
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest()
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            checks = await self._readiness()
            lines = "".join(_check_line(name, ok, detail)
                            for name, (ok, detail) in checks.items())
            status = "200 OK" if all(ok for ok, _ in checks.values()) else "503 Service Unavailable"
            return status, "text/plain", lines.encode()
        return "404 Not Found", "text/plain", b"not found\n"


def _check_line(name: str, ok: bool, detail: str) -> str:
    return f"{name}: {'ok' if ok else 'failing'}{f' ({detail})' if detail else ''}\n"
