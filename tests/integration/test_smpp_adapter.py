"""The SMPP adapter against real peers: every refusal it branches on, and the parts it sends.

Refusals come from a bare SMPP responder in this process, which answers each
``submit_sm`` with the status the test chose, as a ``submit_sm_resp`` or as a
``generic_nack``: smpp34 hands the first over typed and raises the second as
``SmppError`` text, so both ends of ``Refusal`` are proved against the
library itself. The parts are counted by the SMSC simulator, an independent
implementation of the concatenation rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from smsgw.adapters.providers.smpp import Concatenation, SmppConfig, SmppProvider
from smsgw.domain.encoding import measure
from smsgw.ports import OutboundMessage, ProviderError
from tests.unit.test_smpp_status import BRANCHES

BIND_TRANSCEIVER, SUBMIT_SM, UNBIND, ENQUIRE_LINK = 0x09, 0x04, 0x06, 0x15
GENERIC_NACK, RESPONSE = 0x80000000, 0x80000000


class Responder:
    """Binds anyone; answers a submit_sm to ``<status>`` or ``nack<status>`` with that status."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                length, command, _status, sequence = struct.unpack(
                    ">IIII", await reader.readexactly(16))
                body = await reader.readexactly(length - 16)
                writer.write(self._answer(command, sequence, body))
                await writer.drain()
                if command == UNBIND:
                    break
        writer.close()

    @staticmethod
    def _answer(command: int, sequence: int, body: bytes) -> bytes:
        if command == SUBMIT_SM:
            destination = _destination(body)
            if destination.startswith("nack"):
                return _pdu(GENERIC_NACK, int(destination[4:]), sequence)
            return _pdu(SUBMIT_SM | RESPONSE, int(destination), sequence)
        payload = b"RESPONDER\x00" if command == BIND_TRANSCEIVER else b""
        return _pdu(command | RESPONSE, 0, sequence, payload)


def _pdu(command: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command, status, sequence) + body


def _destination(body: bytes) -> str:
    """submit_sm: service_type, source TON/NPI/address, then destination TON/NPI/address."""
    service_end = body.index(b"\x00")
    source_end = body.index(b"\x00", service_end + 3)
    start = source_end + 3
    return body[start:body.index(b"\x00", start)].decode("ascii")


@pytest_asyncio.fixture
async def responder() -> AsyncIterator[SmppProvider]:
    peer = Responder()
    await peer.start()
    provider = SmppProvider(SmppConfig(name="smsc", host="127.0.0.1", port=peer.port,
                                       system_id="ghasi", throttle_retries=0))
    await provider.start(lambda receipt: None)
    yield provider
    await provider.stop()
    await peer.stop()


def message(to: str, body: str = "hello") -> OutboundMessage:
    return OutboundMessage(id=uuid.uuid4(), tenant_id=uuid.uuid4(), to=to, body=body,
                           sender="GHASI", attempt=1, encoding=measure(body).encoding)


@pytest.mark.parametrize("how", ["submit_sm_resp", "generic_nack"])
async def test_every_refusal_the_adapter_branches_on_maps_from_the_library(
        responder: SmppProvider, how: str) -> None:
    for status, code, throttling in BRANCHES:
        reported = status if how == "submit_sm_resp" or status < 0x100 else 0xFF
        to = f"{'nack' if how == 'generic_nack' else ''}{status}"
        with pytest.raises(ProviderError) as refused:
            await responder.send(message(to))
        error = refused.value
        if throttling:  # throttle_retries=0: one throttled answer is the end
            assert (error.code, error.retryable, error.throttled) == (
                "SMPP_THROTTLED", True, True), (how, status)
        elif reported != status:  # smpp34 reports an unknown nack status as ESME_RUNKNOWNERR
            assert (error.code, error.retryable) == ("SMPP_ERROR", True), (how, status)
            assert error.description == "ESME_RUNKNOWNERR"
        else:
            assert (error.code, error.retryable) == (code, code == "SMPP_ERROR"), (how, status)
            assert not error.throttled


LONG_UCS2 = "Ваш код: 4711. " * 13  # 195 UTF-16 code units: 3 parts of 67, 3 of 66


@pytest.mark.parametrize(("concatenation", "parts"), [
    (None, 3),  # the default, udh8: as many parts as the message was counted for
    (Concatenation.UDH8, 3),
    (Concatenation.SAR, 3),
    (Concatenation.UDH16, 3),
])
async def test_the_parts_reported_are_the_parts_the_smsc_received(
        start_smsc: Any, concatenation: Concatenation | None, parts: int) -> None:
    assert measure(LONG_UCS2).segments == 3
    await _sent_in_parts(start_smsc, concatenation, LONG_UCS2, parts)


async def test_udh16_costs_a_part_more_than_the_count_at_accept(start_smsc: Any) -> None:
    """200 UCS-2 characters: counted as 3 parts of 67 at accept; with udh16 they go as 4 of 66."""
    body = "я" * 200
    assert measure(body).segments == 3
    await _sent_in_parts(start_smsc, None, body, 3)
    await _sent_in_parts(start_smsc, Concatenation.UDH16, body, 4)


async def _sent_in_parts(start_smsc: Any, concatenation: Concatenation | None, body: str,
                         parts: int) -> None:
    smsc = await start_smsc(receipt_delay_ms=5)
    options = {} if concatenation is None else {"concatenation": concatenation}
    provider = SmppProvider(SmppConfig(name="smsc", host="127.0.0.1", port=smsc.port,
                                       system_id="ghasi", **options))
    await provider.start(lambda receipt: None)
    try:
        sent = message("+16502530000", body)
        result = await provider.send(sent)
    finally:
        await provider.stop()
    async with asyncio.timeout(10):
        while not (received := [m for m in smsc.messages() if m["client_ref"] == str(sent.id)]):
            await asyncio.sleep(0.05)
    (whole,) = received
    assert whole["text"] == body
    assert len(result.part_ids) == whole["parts"] == parts
    assert result.provider_message_id == result.part_ids[0]
