"""A tiny HTTP listener for /metrics, /healthz and /readyz.

Operations traffic only (a scrape every few seconds, probes), so a minimal
asyncio server beats another web framework in the dependency list.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from smsgw.api import rest_check

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]
MAX_BODY = 5 * 1024 * 1024


class OpsServer:
    def __init__(self, address: str, readiness: ReadinessCheck) -> None:
        self._host, _, port = address.rpartition(":")
        self._port = int(port)
        self._readiness = readiness
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
                length = await self._content_length(reader)
                payload = await reader.readexactly(length) if length else b""
            parts = request_line.decode("latin-1").split()
            verb, target = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            if target.startswith(rest_check.PREFIX):
                code, body = rest_check.check(verb, target, payload)
                status = "200 OK" if code == 200 else "400 Bad Request"
                content_type = "application/json"
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
    async def _content_length(reader: asyncio.StreamReader) -> int:
        length = 0
        while line := (await reader.readline()).strip():
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length > MAX_BODY:
            raise ValueError("body too large")
        return length

    async def _route(self, path: str) -> tuple[str, str, bytes]:
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest()
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            checks = await self._readiness()
            lines = "".join(f"{name}: {'ok' if ok else 'failing'}\n" for name, ok in checks.items())
            status = "200 OK" if all(checks.values()) else "503 Service Unavailable"
            return status, "text/plain", lines.encode()
        return "404 Not Found", "text/plain", b"not found\n"
