"""A Twilio-style HTTP carrier: sends by REST, learns outcomes from signed status callbacks.

Sends are one form POST each over a shared keep-alive connection pool. The
carrier reports delivery later by POSTing to our ops listener
(``/callbacks/<name>``); those requests arrive from the internet, so each is
checked against the carrier's HMAC signature before it can touch a message.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from smsgw.adapters.providers.http_carrier import signing
from smsgw.domain.phone import mask
from smsgw.domain.status import MessageStatus
from smsgw.metrics import CARRIER_CALLBACKS
from smsgw.ports import DeliveryReceipt, OutboundMessage, ProviderError, ReceiptSink, SendResult

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
_FINAL_FAILURES = frozenset({"undelivered", "failed"})


@dataclass(frozen=True, slots=True)
class HttpCarrierConfig:
    name: str
    base_url: str  # e.g. https://api.twilio.com, no trailing path
    account_sid: str
    auth_token: str = field(repr=False)  # a secret: kept out of repr, and so out of logs
    # OUR callback endpoint as the carrier reaches it (the public URL behind any proxy):
    # the carrier signs exactly this URL, so it must match what it was told byte for byte.
    status_callback_url: str
    default_sender: str = ""  # used when a message names no sender
    timeout_seconds: float = 10.0
    max_connections: int = 100
    # What is left of a message's validity goes as ValidityPeriod (seconds), capped
    # here (Twilio takes 1 to 36000); 0: this carrier takes none, none is sent.
    max_validity_period_seconds: int = 36000


class HttpCarrierProvider:
    """SendPort over a Twilio-compatible Messages API."""

    def __init__(self, config: HttpCarrierConfig,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.name = config.name
        self._config = config
        self._transport = transport  # tests may swap the network out; production passes none
        self._client: httpx.AsyncClient | None = None
        self._on_receipt: ReceiptSink | None = None
        self._messages_url = (f"{config.base_url.rstrip('/')}/{API_VERSION}/Accounts/"
                              f"{config.account_sid}/Messages.json")

    async def start(self, on_receipt: ReceiptSink) -> None:
        self._on_receipt = on_receipt
        if self._client is None:
            limits = httpx.Limits(max_connections=self._config.max_connections,
                                  max_keepalive_connections=self._config.max_connections)
            self._client = httpx.AsyncClient(
                auth=httpx.BasicAuth(self._config.account_sid, self._config.auth_token),
                timeout=httpx.Timeout(self._config.timeout_seconds), limits=limits,
                transport=self._transport, follow_redirects=False)

    async def stop(self) -> None:
        self._on_receipt = None
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def send(self, message: OutboundMessage) -> SendResult:
        client = self._client
        if client is None:
            # A send racing shutdown: the message goes back to the outbox, not to FAILED.
            raise ProviderError("NOT_STARTED", "carrier adapter is not running", retryable=True)
        form = {
            "To": message.to,
            "From": message.sender or self._config.default_sender,
            "Body": message.body,
            # Our id rides back on every callback and is visible at the carrier, so a
            # message sent twice (a timeout after the carrier accepted) can be traced.
            "StatusCallback": f"{self._config.status_callback_url}?ref={message.id}",
        }
        if (validity := self._validity(message)) is not None:
            form["ValidityPeriod"] = str(validity)
        try:
            response = await client.post(self._messages_url, data=form)
        except httpx.TimeoutException as exc:
            # Retrying after a read timeout may send twice; losing the message is worse.
            raise self._logged(message, ProviderError(
                "TIMEOUT", type(exc).__name__, retryable=True)) from exc
        except httpx.ConnectError as exc:
            raise self._logged(message, ProviderError(
                "CONNECT_ERROR", str(exc) or type(exc).__name__, retryable=True)) from exc
        except httpx.TransportError as exc:
            raise self._logged(message, ProviderError(
                "TRANSPORT_ERROR", str(exc) or type(exc).__name__, retryable=True)) from exc
        if response.status_code in (200, 201):
            sid = _json_field(response, "sid")
            if sid:
                return SendResult(provider_message_id=sid)
            # Accepted but unnamed: a retry would likely text the person twice, and
            # without a sid no receipt could ever be matched. Fail it, loudly.
            raise self._logged(message, ProviderError(
                "BAD_RESPONSE", f"HTTP {response.status_code} without a message sid",
                retryable=False))
        raise self._logged(message, _classify(response))

    def _validity(self, message: OutboundMessage) -> int | None:
        """The seconds left of the message's validity, rounded down (at least one)."""
        cap = self._config.max_validity_period_seconds
        if message.expire_at is None or cap <= 0:
            return None
        left = (message.expire_at - dt.datetime.now(dt.UTC)).total_seconds()
        return min(cap, max(1, math.floor(left)))

    def _logged(self, message: OutboundMessage, error: ProviderError) -> ProviderError:
        log.warning("carrier refused a send", extra={
            "provider": self.name, "message_id": str(message.id), "to_masked": mask(message.to),
            "error_code": error.code, "retryable": error.retryable})
        return error

    def handle_callback(self, query: str, form: Mapping[str, str], signature: str | None) -> int:
        """One status callback; returns the HTTP status to answer the carrier with.

        Synchronous: verifying an HMAC and handing a receipt to the (sync) sink
        never waits on anything.
        """
        url = self._config.status_callback_url + (f"?{query}" if query else "")
        if signature is None or not signing.verify(
                self._config.auth_token, url, form, signature):
            CARRIER_CALLBACKS.labels(self.name, "rejected").inc()
            log.warning("carrier callback with a missing or wrong signature", extra={
                "provider": self.name, "signed": signature is not None})
            return 403
        on_receipt = self._on_receipt
        if on_receipt is None:
            # Not (or no longer) running: nowhere to record it. A 5xx asks the carrier
            # to try again later rather than dropping the receipt as handled.
            return 503
        receipt = self._receipt(form)
        if receipt is None:
            CARRIER_CALLBACKS.labels(self.name, "ignored").inc()
            return 204
        on_receipt(receipt)
        CARRIER_CALLBACKS.labels(self.name, "accepted").inc()
        return 204

    def _receipt(self, form: Mapping[str, str]) -> DeliveryReceipt | None:
        """The final outcome a callback reports, or None for progress reports (sent, ...)."""
        status = form.get("MessageStatus") or form.get("SmsStatus") or ""
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        if not sid:
            return None
        if status == "delivered":
            return DeliveryReceipt(provider=self.name, provider_message_id=sid,
                                   status=MessageStatus.DELIVERED)
        if status in _FINAL_FAILURES:
            code = form.get("ErrorCode", "")
            return DeliveryReceipt(
                provider=self.name, provider_message_id=sid, status=MessageStatus.UNDELIVERED,
                error_code=f"CARRIER_{code}" if code else "",
                error_description=form.get("ErrorMessage", "") or status)
        return None  # queued, accepted, sending, sent, read...: not final


def _classify(response: httpx.Response) -> ProviderError:
    status = response.status_code
    if status in (401, 403):
        # Our credentials are wrong: every retry would fail the same way.
        return ProviderError("CARRIER_AUTH", _json_field(response, "message")
                             or f"HTTP {status}", retryable=False)
    if status == 429 or status >= 500:
        return ProviderError(f"HTTP_{status}", _json_field(response, "message")
                             or response.reason_phrase, retryable=True)
    code = _json_field(response, "code")
    description = _json_field(response, "message") or response.reason_phrase
    if code:
        return ProviderError(f"CARRIER_{code}", description, retryable=False)
    return ProviderError(f"HTTP_{status}", description, retryable=False)


def _json_field(response: httpx.Response, name: str) -> str:
    """A top-level field of a JSON body as text, or "" when there is no such thing."""
    try:
        document = json.loads(response.content)
    except ValueError:
        return ""
    value = document.get(name) if isinstance(document, dict) else None
    return "" if value is None else str(value)
