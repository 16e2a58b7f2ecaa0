"""A fake Twilio-style carrier on a real socket: strict about what it is sent, scriptable.

It stands in for the carrier in tests and local runs, so it is deliberately
pickier than most real servers: every request is checked against the API
contract, and each breach is answered the way the carrier would (a 4xx with a
Twilio-shaped JSON error) and also written to ``violations``, so a test can
assert that our adapter never put a foot wrong. Accepted messages are then
reported back through signed status callbacks, as the carrier does.

The callback signature is computed here, independently of the adapter's own
(``smsgw.adapters.providers.http_carrier.signing``), so a test that passes has
cross-checked both implementations rather than one against itself.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import random
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_REQUIRED = ("To", "From", "Body", "StatusCallback")
_ALLOWED = frozenset({*_REQUIRED, "MessagingServiceSid", "ValidityPeriod"})
_MAX_VALIDITY_PERIOD = 36000  # seconds, as Twilio documents it
_MAX_BODY = 1024 * 1024
_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized",
            404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
            413: "Payload Too Large", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout"}
# The carrier's own error codes for the faults it can be told to inject.
_FAULT_CODES = {429: 20429, 500: 20500, 503: 20503}


@dataclass(frozen=True, slots=True)
class FakeMessage:
    sid: str
    to: str
    from_: str
    body: str
    client_ref: str  # the ``ref`` query parameter of the StatusCallback URL
    accepted_at: datetime
    validity_period: int | None = None  # seconds, when the request set ValidityPeriod


@dataclass(frozen=True, slots=True)
class CallbackAttempt:
    """One status callback the fake tried to make, and how our side answered."""

    sid: str
    status: str
    http_status: int | None  # None: lost on purpose, or the connection failed
    signed: bool


@dataclass(slots=True)
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class _Refusal(Exception):
    """An error answer; ``violation`` is False for injected faults, which break no rule."""

    def __init__(self, http_status: int, code: int, message: str, *,
                 violation: bool = True) -> None:
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message
        self.violation = violation


class FakeCarrier:
    """``await start()``, point the adapter at ``url``, flip the knobs as the test goes."""

    def __init__(self, account_sid: str, auth_token: str, *, host: str = "127.0.0.1",
                 port: int = 0, seed: int = 0) -> None:
        self.account_sid = account_sid
        self._auth_token = auth_token
        self._host, self._port = host, port
        self.rng = random.Random(seed)
        # Fault injection: plain attributes, read per request, so a test may change them live.
        self.fail_with: int | None = None
        self.reject_numbers: set[str] = set()
        self.latency_ms: float = 0.0
        self.callback_delay_ms: float = 0.0
        self.lost_callback_rate: float = 0.0
        self.undelivered_rate: float = 0.0
        self.sign_callbacks: bool = True
        # What happened, for assertions.
        self.messages: list[FakeMessage] = []
        self.violations: list[str] = []
        self.callbacks: list[CallbackAttempt] = []
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._client: httpx.AsyncClient | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the carrier first"
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def messages_path(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    async def start(self) -> None:
        if self._server is None:
            self._client = httpx.AsyncClient(timeout=10.0)
            self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.close()
            # Keep-alive connections would hold wait_closed() open: end them first.
            for writer in list(self._connections):
                writer.close()
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # -- the API side ----------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while (request := await _read_request(reader)) is not None:
                self.requests += 1
                status, document = await self._answer(request)
                _write_response(writer, status, document, request.keep_alive)
                await writer.drain()
                if not request.keep_alive:
                    break
        except _Refusal as refusal:  # unparseable framing: answer once, then hang up
            self._record(refusal)
            _write_response(writer, refusal.http_status, _error(refusal), keep_alive=False)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, request: _Request) -> tuple[int, dict[str, object]]:
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000)
        try:
            form = self._check(request)
            if self.fail_with is not None:
                raise _Refusal(self.fail_with, _FAULT_CODES.get(self.fail_with, 20500),
                               f"injected HTTP {self.fail_with}", violation=False)
            if form["To"] in self.reject_numbers:
                raise _Refusal(400, 21211, f"The 'To' number {form['To']} is not a valid "
                               "phone number.", violation=False)
        except _Refusal as refusal:
            self._record(refusal)
            return refusal.http_status, _error(refusal)
        return 201, self._accept(form)

    def _check(self, request: _Request) -> dict[str, str]:
        """The whole contract, in the order the carrier checks it; the first breach wins."""
        if request.target.split("?")[0] != self.messages_path:
            raise _Refusal(404, 20404, f"The requested resource {request.target} was not found")
        if request.target != self.messages_path:
            raise _Refusal(400, 21200, "unexpected query string on the Messages resource")
        if request.method != "POST":
            raise _Refusal(405, 20004, f"Method {request.method} not allowed")
        if not self._authorized(request.headers.get("authorization", "")):
            raise _Refusal(401, 20003, "Authenticate")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise _Refusal(400, 21200, f"unsupported Content-Type {content_type or '(none)'}")
        try:
            pairs = parse_qsl(request.body.decode(), keep_blank_values=True,
                              strict_parsing=bool(request.body))
        except ValueError as exc:
            raise _Refusal(400, 21200, f"malformed form body: {exc}") from exc
        form = dict(pairs)
        if len(form) != len(pairs):
            raise _Refusal(400, 21200, "a parameter is repeated")
        unknown = sorted(set(form) - _ALLOWED)
        if unknown:
            raise _Refusal(400, 21200, f"unknown parameters: {', '.join(unknown)}")
        for name in _REQUIRED:
            if not form.get(name):
                code = {"To": 21604, "From": 21603, "Body": 21602}.get(name, 21609)
                raise _Refusal(400, code, f"A '{name}' parameter is required")
        if not _E164.fullmatch(form["To"]):
            raise _Refusal(400, 21211, "The 'To' number is not in E.164 form")
        _check_validity(form.get("ValidityPeriod"))
        callback = urlsplit(form["StatusCallback"])
        if callback.scheme not in ("http", "https") or not callback.hostname:
            raise _Refusal(400, 21609, "StatusCallback must be an absolute http(s) URL")
        return form

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            return False
        # Both compared, constant-time, whatever the first one says.
        sid_ok = hmac.compare_digest(user.encode(), self.account_sid.encode())
        token_ok = hmac.compare_digest(password.encode(), self._auth_token.encode())
        return sid_ok and token_ok

    def _record(self, refusal: _Refusal) -> None:
        if refusal.violation:
            self.violations.append(f"{refusal.http_status} {refusal.code}: {refusal.message}")

    def _accept(self, form: dict[str, str]) -> dict[str, object]:
        sid = "SM" + secrets.token_hex(16)
        callback = form["StatusCallback"]
        refs = parse_qs(urlsplit(callback).query).get("ref", [""])
        now = datetime.now(UTC)
        self.messages.append(FakeMessage(sid=sid, to=form["To"], from_=form["From"],
                                         body=form["Body"], client_ref=refs[0], accepted_at=now,
                                         validity_period=int(form["ValidityPeriod"])
                                         if "ValidityPeriod" in form else None))
        task = asyncio.create_task(self._report(sid, form))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {
            "sid": sid, "account_sid": self.account_sid, "to": form["To"],
            "from": form["From"], "body": form["Body"], "status": "queued",
            "num_segments": "1", "direction": "outbound-api", "api_version": API_VERSION,
            "date_created": format_datetime(now), "error_code": None, "error_message": None,
            "uri": f"{self.messages_path.removesuffix('.json')}/{sid}.json",
        }

    # -- the callback side -----------------------------------------------------------------

    async def _report(self, sid: str, form: dict[str, str]) -> None:
        undelivered = self.rng.random() < self.undelivered_rate
        for status in ("sent", "undelivered" if undelivered else "delivered"):
            if self.callback_delay_ms > 0:
                await asyncio.sleep(self.callback_delay_ms / 1000)
            params = {
                "MessageSid": sid, "SmsSid": sid, "AccountSid": self.account_sid,
                "From": form["From"], "To": form["To"], "MessageStatus": status,
                "SmsStatus": status, "ApiVersion": API_VERSION,
            }
            if status == "undelivered":
                params["ErrorCode"] = "30003"  # unreachable destination handset
            await self._post_callback(form["StatusCallback"], sid, status, params)

    async def _post_callback(self, url: str, sid: str, status: str,
                             params: dict[str, str]) -> None:
        signed = self.sign_callbacks
        if self.rng.random() < self.lost_callback_rate or self._client is None:
            self.callbacks.append(CallbackAttempt(sid, status, None, signed))
            return
        headers = {"X-Twilio-Signature": _sign(self._auth_token, url, params)} if signed else {}
        try:
            response = await self._client.post(url, data=params, headers=headers)
            answer: int | None = response.status_code
        except httpx.HTTPError as exc:
            log.warning("fake carrier could not deliver a callback", extra={"error": str(exc)})
            answer = None
        self.callbacks.append(CallbackAttempt(sid, status, answer, signed))


def _check_validity(validity: str | None) -> None:
    if validity is not None and not (
            validity.isdigit() and 1 <= int(validity) <= _MAX_VALIDITY_PERIOD):
        raise _Refusal(400, 21623, "ValidityPeriod must be an integer from 1 to "
                                   f"{_MAX_VALIDITY_PERIOD} seconds")


def _sign(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's scheme, written apart from the gateway's own (see the module docstring)."""
    message = url
    for key in sorted(params):
        message += key + params[key]
    return base64.b64encode(hmac.digest(token.encode(), message.encode(), "sha1")).decode()


def _error(refusal: _Refusal) -> dict[str, object]:
    return {"code": refusal.code, "message": refusal.message, "status": refusal.http_status,
            "more_info": f"https://www.twilio.com/docs/errors/{refusal.code}"}


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """One HTTP/1.1 request, or None when the client closed an idle connection."""
    line = await reader.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Refusal(400, 21200, f"malformed request line {line[:80]!r}")
    method, target, version = parts
    headers: dict[str, str] = {}
    while header := (await reader.readline()).strip():
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise _Refusal(411, 21200, "chunked bodies are not accepted; send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise _Refusal(400, 21200, "bad Content-Length") from exc
    if not 0 <= length <= _MAX_BODY:
        raise _Refusal(413, 21200, "body too large")
    body = await reader.readexactly(length) if length else b""
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return _Request(method, target, headers, body, keep_alive)


def _write_response(writer: asyncio.StreamWriter, status: int, document: dict[str, object],
                    keep_alive: bool) -> None:
    body = json.dumps(document).encode()
    writer.write(
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        f"Content-Type: application/json; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n".encode() + body)
