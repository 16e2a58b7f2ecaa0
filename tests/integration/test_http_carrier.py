"""The HTTP carrier adapter against the fake carrier, callbacks through a real OpsServer.

Everything crosses real sockets: adapter -> fake carrier (REST), fake carrier ->
ops listener -> adapter (signed status callbacks). The fake checks every
request against the carrier's contract and signs with its own HMAC code, so
these tests also cross-check our signature scheme. No Postgres or Redis needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from smsgw.adapters.providers.http_carrier import HttpCarrierConfig, HttpCarrierProvider
from smsgw.domain.encoding import Encoding
from smsgw.domain.status import MessageStatus
from smsgw.http import CallbackHandler, OpsServer
from smsgw.ports import DeliveryReceipt, OutboundMessage, ProviderError
from smsgw_simulators.fake_carrier import FakeCarrier

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "carrier-secret-token"
SENDER = "+15005550006"
WAIT = 10.0  # seconds: a bound on hanging, never a measurement


@dataclass
class Receipts:
    """The ReceiptSink: records, and wakes whoever waits."""

    got: list[DeliveryReceipt] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, receipt: DeliveryReceipt) -> None:
        self.got.append(receipt)
        self.changed.set()


@dataclass
class Rig:
    carrier: FakeCarrier
    ops: OpsServer
    provider: HttpCarrierProvider
    receipts: Receipts
    routes: dict[str, CallbackHandler]

    @property
    def callback_url(self) -> str:
        return f"http://127.0.0.1:{self.ops.port}/callbacks/{self.provider.name}"

    def config(self, **overrides: object) -> HttpCarrierConfig:
        values: dict[str, object] = {
            "name": self.provider.name, "base_url": self.carrier.url, "account_sid": SID,
            "auth_token": TOKEN, "status_callback_url": self.callback_url,
            "default_sender": SENDER, "timeout_seconds": 5.0, "max_connections": 4}
        values.update(overrides)
        return HttpCarrierConfig(**values)  # type: ignore[arg-type]


def message(to: str = "+447700900123", body: str = "hello", sender: str = "") -> OutboundMessage:
    return OutboundMessage(id=uuid.uuid4(), tenant_id=uuid.uuid4(), to=to, body=body,
                           sender=sender, attempt=1, encoding=Encoding.GSM7)


def callbacks_metric(provider: str, result: str) -> float:
    value = REGISTRY.get_sample_value(
        "sms_carrier_callbacks_total", {"provider": provider, "result": result})
    return value or 0.0


async def until(condition: Callable[[], bool]) -> None:
    """Polls until ``condition`` holds; fails the test only if it never does."""
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.01)


async def ready() -> dict[str, tuple[bool, str]]:
    return {"test": (True, "")}


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    carrier = FakeCarrier(SID, TOKEN, seed=7)
    await carrier.start()
    # Filled after start: the adapter's callback URL names the port the server bound.
    routes: dict[str, CallbackHandler] = {}
    ops = OpsServer("127.0.0.1:0", ready, callbacks=routes)
    await ops.start()
    name = f"carrier-{uuid.uuid4().hex[:8]}"  # a fresh metrics label per test
    provider = HttpCarrierProvider(HttpCarrierConfig(
        name=name, base_url=carrier.url, account_sid=SID, auth_token=TOKEN,
        status_callback_url=f"http://127.0.0.1:{ops.port}/callbacks/{name}",
        default_sender=SENDER, timeout_seconds=5.0, max_connections=4))
    routes[name] = provider
    receipts = Receipts()
    await provider.start(receipts)
    try:
        yield Rig(carrier, ops, provider, receipts, routes)
    finally:
        await provider.stop()
        await carrier.stop()
        await ops.stop()


async def test_send_returns_the_carriers_sid_and_passes_our_id_as_reference(rig: Rig) -> None:
    sent = message(body="héllo, wörld")
    result = await rig.provider.send(sent)

    assert rig.carrier.violations == []
    [recorded] = rig.carrier.messages
    assert result.provider_message_id == recorded.sid
    assert recorded.sid.startswith("SM") and len(recorded.sid) == 34
    assert recorded.client_ref == str(sent.id)
    assert (recorded.to, recorded.from_, recorded.body) == (sent.to, SENDER, "héllo, wörld")


async def test_the_messages_own_sender_wins_over_the_default(rig: Rig) -> None:
    await rig.provider.send(message(sender="ACME"))
    assert rig.carrier.violations == []
    assert rig.carrier.messages[0].from_ == "ACME"


async def test_connections_are_reused(rig: Rig) -> None:
    for _ in range(5):
        await rig.provider.send(message())
    assert rig.carrier.violations == []
    assert len(rig.carrier.messages) == 5
    assert rig.carrier.requests == 5


async def test_a_delivered_callback_reaches_the_sink(rig: Rig) -> None:
    before = callbacks_metric(rig.provider.name, "accepted")
    result = await rig.provider.send(message())
    await until(lambda: len(rig.carrier.callbacks) == 2)

    assert [(c.status, c.http_status) for c in rig.carrier.callbacks] == [
        ("sent", 204), ("delivered", 204)]
    assert rig.receipts.got == [DeliveryReceipt(
        provider=rig.provider.name, provider_message_id=result.provider_message_id,
        status=MessageStatus.DELIVERED)]
    assert callbacks_metric(rig.provider.name, "accepted") == before + 1
    assert callbacks_metric(rig.provider.name, "ignored") >= 1  # the "sent" progress report


async def test_an_undelivered_callback_carries_the_carriers_error_code(rig: Rig) -> None:
    rig.carrier.undelivered_rate = 1.0
    result = await rig.provider.send(message())
    await until(lambda: len(rig.carrier.callbacks) == 2)

    [receipt] = rig.receipts.got
    assert receipt.provider_message_id == result.provider_message_id
    assert receipt.status is MessageStatus.UNDELIVERED
    assert receipt.error_code == "CARRIER_30003"


@pytest.mark.parametrize("status", [503, 429, 500])
async def test_throttling_and_outages_are_retryable(rig: Rig, status: int) -> None:
    rig.carrier.fail_with = status
    with pytest.raises(ProviderError) as caught:
        await rig.provider.send(message())
    assert caught.value.retryable
    assert caught.value.code == f"HTTP_{status}"
    assert rig.carrier.messages == []
    assert rig.carrier.violations == []

    rig.carrier.fail_with = None  # the outage ends: the same adapter sends again
    await rig.provider.send(message())
    assert len(rig.carrier.messages) == 1


async def test_an_invalid_number_is_a_permanent_carrier_error(rig: Rig) -> None:
    rig.carrier.reject_numbers = {"+447700900999"}
    with pytest.raises(ProviderError) as caught:
        await rig.provider.send(message(to="+447700900999"))
    assert not caught.value.retryable
    assert caught.value.code == "CARRIER_21211"
    assert "not a valid phone number" in caught.value.description
    assert rig.carrier.messages == []
    assert rig.carrier.violations == []


async def test_wrong_credentials_are_a_permanent_auth_error(rig: Rig) -> None:
    wrong = HttpCarrierProvider(rig.config(auth_token="not-the-token"))
    await wrong.start(rig.receipts)
    try:
        with pytest.raises(ProviderError) as caught:
            await wrong.send(message())
    finally:
        await wrong.stop()
    assert caught.value.code == "CARRIER_AUTH"
    assert not caught.value.retryable
    assert rig.carrier.messages == []
    assert [v for v in rig.carrier.violations if v.startswith("401")] == rig.carrier.violations
    assert len(rig.carrier.violations) == 1


async def test_an_unreachable_carrier_is_retryable(rig: Rig) -> None:
    gone = HttpCarrierProvider(rig.config())
    await rig.carrier.stop()
    await gone.start(rig.receipts)
    try:
        with pytest.raises(ProviderError) as caught:
            await gone.send(message())
    finally:
        await gone.stop()
    assert caught.value.retryable
    assert caught.value.code == "CONNECT_ERROR"


async def test_unsigned_callbacks_are_refused_and_counted(rig: Rig) -> None:
    before = callbacks_metric(rig.provider.name, "rejected")
    rig.carrier.sign_callbacks = False
    await rig.provider.send(message())
    await until(lambda: len(rig.carrier.callbacks) == 2)

    assert [c.http_status for c in rig.carrier.callbacks] == [403, 403]
    assert rig.receipts.got == []
    assert callbacks_metric(rig.provider.name, "rejected") == before + 2


async def test_a_forged_callback_is_refused_and_counted(rig: Rig) -> None:
    result = await rig.provider.send(message())
    await until(lambda: len(rig.carrier.callbacks) == 2)
    rig.receipts.got.clear()
    before = callbacks_metric(rig.provider.name, "rejected")

    forged = {"MessageSid": result.provider_message_id, "MessageStatus": "undelivered",
              "ErrorCode": "30003", "AccountSid": SID}
    url = f"{rig.callback_url}?ref={uuid.uuid4()}"
    async with httpx.AsyncClient() as client:
        wrong = await client.post(url, data=forged,
                                  headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJlIQ=="})
        missing = await client.post(url, data=forged)

    assert (wrong.status_code, missing.status_code) == (403, 403)
    assert rig.receipts.got == []
    assert callbacks_metric(rig.provider.name, "rejected") == before + 2


async def test_a_signature_over_a_different_url_is_refused(rig: Rig) -> None:
    """The query string is signed too: a replay with another ref must not pass."""
    from smsgw.adapters.providers.http_carrier import signing as carrier_signature

    params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}
    signed_for = f"{rig.callback_url}?ref=a"
    signature = carrier_signature.signature(TOKEN, signed_for, params)
    async with httpx.AsyncClient() as client:
        replay = await client.post(f"{rig.callback_url}?ref=b", data=params,
                                   headers={"x-twilio-signature": signature})
        genuine = await client.post(signed_for, data=params,
                                    headers={"x-twilio-signature": signature})
    assert (replay.status_code, genuine.status_code) == (403, 204)
    assert [r.provider_message_id for r in rig.receipts.got] == [params["MessageSid"]]


async def test_callbacks_for_an_unknown_provider_are_not_found(rig: Rig) -> None:
    async with httpx.AsyncClient() as client:
        unknown = await client.post(
            f"http://127.0.0.1:{rig.ops.port}/callbacks/nobody", data={"a": "b"})
        wrong_verb = await client.get(rig.callback_url)
        health = await client.get(f"http://127.0.0.1:{rig.ops.port}/healthz")
        ready_ = await client.get(f"http://127.0.0.1:{rig.ops.port}/readyz")
    assert unknown.status_code == 404
    assert wrong_verb.status_code == 405
    assert (health.status_code, health.text) == (200, "ok\n")
    assert (ready_.status_code, ready_.text) == (200, "test: ok\n")


async def test_the_fake_reports_contract_breaches(rig: Rig) -> None:
    """The fake must be able to fail a test: a sloppy client is caught, not served."""
    base = f"{rig.carrier.url}{rig.carrier.messages_path}"
    good = {"To": "+447700900123", "From": SENDER, "Body": "x",
            "StatusCallback": "http://127.0.0.1:1/cb?ref=1"}
    async with httpx.AsyncClient(auth=(SID, TOKEN)) as client:
        answers = [
            await client.post(base, data={**good, "To": "07700900123"}),
            await client.post(base, data={**good, "Body": ""}),
            await client.post(base, data={**good, "StatusCallback": "/relative"}),
            await client.post(base, data={**good, "Priority": "high"}),
            await client.post(base, json=good),
            await client.post(base.replace("Messages", "Calls"), data=good),
        ]
    assert [a.status_code for a in answers] == [400, 400, 400, 400, 400, 404]
    assert answers[0].json()["code"] == 21211
    assert len(rig.carrier.violations) == 6
    assert rig.carrier.messages == []


def test_the_token_stays_out_of_the_config_repr() -> None:
    config = HttpCarrierConfig(name="c", base_url="http://x", account_sid=SID,
                               auth_token=TOKEN, status_callback_url="http://y/callbacks/c")
    assert TOKEN not in repr(config)


async def test_what_is_left_of_the_validity_goes_as_validity_period(rig: Rig) -> None:
    now = dt.datetime.now(dt.UTC)
    hour = dataclasses.replace(message(), expire_at=now + dt.timedelta(seconds=3600.5))
    days = dataclasses.replace(message(), expire_at=now + dt.timedelta(days=2))
    for sent in (hour, days, message()):
        await rig.provider.send(sent)
    assert rig.carrier.violations == []
    periods = {m.client_ref: m.validity_period for m in rig.carrier.messages}
    left = periods[str(hour.id)]
    assert left is not None and 3590 <= left <= 3600  # rounded down, never longer
    assert periods[str(days.id)] == 36000  # the carrier's longest
    assert periods[str(sent.id)] is None  # the last: no validity of its own


async def test_a_carrier_that_takes_no_validity_gets_none(rig: Rig) -> None:
    provider = HttpCarrierProvider(rig.config(max_validity_period_seconds=0))
    await provider.start(rig.receipts)
    try:
        await provider.send(dataclasses.replace(
            message(), expire_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)))
    finally:
        await provider.stop()
    assert rig.carrier.violations == []
    assert [m.validity_period for m in rig.carrier.messages] == [None]
