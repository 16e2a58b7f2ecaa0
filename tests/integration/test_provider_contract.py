"""One contract every provider adapter passes, each against a peer that is not ours.

- the carrier simulator (in process: it *is* the peer);
- SMPP 3.4 against the SMSC simulator, a separate process on smpp34's server side;
- the HTTP carrier against the fake carrier, which checks every request, with
  its signed status callbacks coming back through a real ops listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from smsgw.adapters.providers.http_carrier import HttpCarrierConfig, HttpCarrierProvider
from smsgw.adapters.providers.smpp import SmppConfig, SmppProvider
from smsgw.domain.encoding import Encoding, measure
from smsgw.domain.status import MessageStatus
from smsgw.http import OpsServer
from smsgw.ports import DeliveryReceipt, OutboundMessage, ProviderError, SendPort
from smsgw_simulators.carrier import CarrierSimulator, SimulatorConfig
from smsgw_simulators.fake_carrier import FakeCarrier

KINDS = ("simulator", "smpp", "http")
FAULTS = (None, "permanent", "transient")
LONG_UNICODE = "Ghasi — доставка подтверждена ✅ " * 8
WAIT = 15.0  # a bound on hanging, never a measurement


@dataclass
class Receipts:
    got: list[DeliveryReceipt] = field(default_factory=list)

    def __call__(self, receipt: DeliveryReceipt) -> None:
        self.got.append(receipt)


@dataclass
class Peer:
    """An adapter, started, and a way to see what its carrier received."""

    port: SendPort
    receipts: Receipts
    references: Any  # () -> list of client references the carrier saw
    cleanup: list[Any] = field(default_factory=list)


async def until(condition: Any) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.02)


def outbound(body: str = "hello from the contract", to: str = "+16502530000") -> OutboundMessage:
    return OutboundMessage(id=uuid.uuid4(), tenant_id=uuid.uuid4(), to=to, body=body,
                           sender="GHASI", attempt=1, encoding=measure(body).encoding)


async def simulator_peer(fault: str | None, start_smsc: Any) -> Peer:
    del start_smsc
    config = SimulatorConfig(latency_ms=1, receipt_delay_ms=5,
                             permanent_failure_rate=1.0 if fault == "permanent" else 0.0,
                             failure_rate=1.0 if fault == "transient" else 0.0)
    port = CarrierSimulator(config)
    return Peer(port, Receipts(), lambda: port.client_references)


async def smpp_peer(fault: str | None, start_smsc: Any) -> Peer:
    faults = {"permanent": {"reject_rate": 1.0}, "transient": {"throttle_rate": 1.0}}
    smsc = await start_smsc(receipt_delay_ms=5, **faults.get(fault or "", {}))
    port = SmppProvider(SmppConfig(name="smpp", host="127.0.0.1", port=smsc.port,
                                   system_id="ghasi", password="secret", window=10,
                                   throttle_retries=1, throttle_backoff_seconds=0.01))

    def references() -> list[str]:
        return [m["client_ref"] for m in smsc.messages()]

    return Peer(port, Receipts(), references)


async def http_peer(fault: str | None, start_smsc: Any) -> Peer:
    del start_smsc
    carrier = FakeCarrier("AC" + "ab" * 16, "token-123")
    await carrier.start()
    ops = OpsServer("127.0.0.1:0", _ready, callbacks={})
    await ops.start()
    port = HttpCarrierProvider(HttpCarrierConfig(
        name="http", base_url=carrier.url, account_sid="AC" + "ab" * 16, auth_token="token-123",
        status_callback_url=f"http://127.0.0.1:{ops.port}/callbacks/http",
        default_sender="+15005550006"))
    ops_callbacks: Any = ops._callbacks  # the mapping it reads on every request
    ops_callbacks["http"] = port
    if fault == "permanent":
        carrier.reject_numbers.add("+16502530000")
    if fault == "transient":
        carrier.fail_with = 503
    peer = Peer(port, Receipts(), lambda: [m.client_ref for m in carrier.messages])
    peer.cleanup += [ops.stop, carrier.stop]
    assert not carrier.violations
    return peer


PEERS = {"simulator": simulator_peer, "smpp": smpp_peer, "http": http_peer}


@pytest_asyncio.fixture
async def peer(request: pytest.FixtureRequest, start_smsc: Any) -> AsyncIterator[Peer]:
    kind, fault = request.param
    made = await PEERS[kind](fault, start_smsc)
    await made.port.start(made.receipts)
    yield made
    await made.port.stop()
    for stop in made.cleanup:
        with contextlib.suppress(Exception):
            await stop()


async def _ready() -> dict[str, bool]:
    return {"contract": True}


def cases(fault: str | None) -> Any:
    return pytest.mark.parametrize("peer", [(kind, fault) for kind in KINDS],
                                   indirect=True, ids=KINDS)


@cases(None)
async def test_a_send_is_acknowledged_and_its_receipt_names_the_same_id(peer: Peer) -> None:
    message = outbound()
    result = await peer.port.send(message)
    assert result.provider_message_id
    await until(lambda: peer.receipts.got)
    (receipt,) = peer.receipts.got
    assert receipt.provider == peer.port.name
    assert receipt.provider_message_id == result.provider_message_id
    assert receipt.status is MessageStatus.DELIVERED


@cases(None)
async def test_our_message_id_reaches_the_carrier_as_its_client_reference(peer: Peer) -> None:
    message = outbound()
    await peer.port.send(message)
    await until(lambda: str(message.id) in peer.references())


@cases(None)
async def test_a_long_unicode_message_is_taken_and_reported_once(peer: Peer) -> None:
    message = outbound(LONG_UNICODE)
    assert message.encoding is Encoding.UCS2 and measure(LONG_UNICODE).segments > 1
    result = await peer.port.send(message)
    await until(lambda: str(message.id) in peer.references())
    for part in result.part_ids or (result.provider_message_id,):
        await until(lambda part=part: part in {r.provider_message_id for r in peer.receipts.got})


@cases("permanent")
async def test_a_permanent_refusal_is_not_retryable(peer: Peer) -> None:
    with pytest.raises(ProviderError) as refused:
        await peer.port.send(outbound())
    assert not refused.value.retryable and refused.value.code


@cases("transient")
async def test_a_transient_failure_is_retryable(peer: Peer) -> None:
    with pytest.raises(ProviderError) as failed:
        await peer.port.send(outbound())
    assert failed.value.retryable and failed.value.code
