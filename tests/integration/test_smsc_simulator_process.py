"""The SMSC simulator as the process the SMPP adapter meets: bind, submit, receipts, journal.

Starts ``python -m smsgw_simulators.smsc`` on a free port and drives it with a
plain ``smpp34.Client``, so the check is independent of our own SMPP adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import smpp34

CLIENT_REF = 0x1501
RECEIPTED_MESSAGE_ID = 0x001E
MESSAGE_STATE = 0x0427
RECEIPT = re.compile(
    r"id:(\w+) sub:001 dlvrd:001 submit date:\d{10} done date:\d{10} "
    r"stat:DELIVRD err:000 text:(.{0,20})")

Started = tuple[asyncio.subprocess.Process, int]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def start_smsc(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Started]]]:
    processes: list[asyncio.subprocess.Process] = []

    async def start(*options: str) -> Started:
        port = _free_port()
        stderr = (tmp_path / f"smsc-{port}.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw_simulators.smsc", "--port", str(port), *options,
            stdout=asyncio.subprocess.PIPE, stderr=stderr)
        stderr.close()
        processes.append(process)
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = await process.stdout.readline()
        assert line.decode().strip() == f"SMSC listening on 127.0.0.1:{port}", (
            (tmp_path / f"smsc-{port}.log").read_text())
        return process, port

    yield start
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        return await process.wait()


async def test_multipart_ucs2_and_gsm7_are_journaled_and_receipted(
    start_smsc: Callable[..., Awaitable[Started]], tmp_path: Path,
) -> None:
    journal, stats = tmp_path / "journal.jsonl", tmp_path / "stats.json"
    process, port = await start_smsc(
        "--journal", str(journal), "--stats", str(stats), "--system-id", "gateway",
        "--receipt-delay-ms", "10", "--id-format", "hex", "--receipt-id-format", "decimal")
    smsc = await smpp34.Client("127.0.0.1", port, "gateway", "secret", bind_type="TRX").connect()

    # 3 parts of UCS-2 (Cyrillic and a surrogate pair) behind an 8-bit-reference UDH.
    long_text = "Привет, мир! 👋 " * 12
    raw = long_text.encode("utf-16-be")
    assert len(raw) == 384
    resp_ids: dict[str, list[str]] = {"gw-1": [], "gw-2": []}
    for seq in (1, 2, 3):
        udh = bytes([0x05, 0x00, 0x03, 0x2A, 0x03, seq])
        resp = await smsc.submit_sm(
            "31600000001", udh + raw[(seq - 1) * 128 : seq * 128], source_addr="GATEWAY",
            esm_class=0x40, data_coding=8, registered_delivery=1,
            tlvs=[smpp34.Tlv(CLIENT_REF, b"gw-1")])
        assert resp.is_success and resp.message_id
        resp_ids["gw-1"].append(resp.message_id)

    # One GSM 03.38 message, unpacked, with an extension-table euro and an '@' (0x00).
    resp = await smsc.submit_sm(
        "31600000002", b"Price: 5\x1b\x65 \x00home", source_addr="GATEWAY", data_coding=0,
        registered_delivery=1, tlvs=[smpp34.Tlv(CLIENT_REF, b"gw-2")])
    assert resp.is_success and resp.message_id
    resp_ids["gw-2"].append(resp.message_id)
    all_ids = [i for ids in resp_ids.values() for i in ids]
    assert all(re.fullmatch(r"[0-9a-f]+", i) for i in all_ids)
    assert len(set(all_ids)) == 4

    receipts = []
    async with asyncio.timeout(30):
        while len(receipts) < 4:
            event = await smsc.next()
            assert isinstance(event, smpp34.DeliverSmEvent), event
            receipts.append(event)
    await smsc.unbind()

    receipted = set()
    for event in receipts:
        assert event.esm_class == 0x04
        match = RECEIPT.fullmatch(event.short_message.decode("ascii"))
        assert match, event.short_message
        tlvs = {tlv.tag: tlv.value for tlv in event.tlvs}
        assert tlvs[RECEIPTED_MESSAGE_ID] == match.group(1).encode() + b"\x00"
        assert tlvs[MESSAGE_STATE] == b"\x02"
        receipted.add(match.group(1))
    # The receipts name the same ids in decimal, as some real SMSCs do.
    assert receipted == {str(int(i, 16)) for i in all_ids}
    assert {e.source_addr for e in receipts} == {"31600000001", "31600000002"}
    assert {e.destination_addr for e in receipts} == {"GATEWAY"}

    assert await _stop(process) == 0
    lines = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines()]
    by_ref = {line["client_ref"]: line for line in lines}
    assert len(lines) == 2 and set(by_ref) == {"gw-1", "gw-2"}
    assert by_ref["gw-1"]["text"] == long_text
    assert {k: by_ref["gw-1"][k] for k in ("to", "from", "data_coding", "parts", "mode")} == {
        "to": "31600000001", "from": "GATEWAY", "data_coding": 8, "parts": 3, "mode": "udh8"}
    assert by_ref["gw-1"]["message_ids"] == resp_ids["gw-1"]
    assert by_ref["gw-2"]["text"] == "Price: 5€ @home"
    assert (by_ref["gw-2"]["mode"], by_ref["gw-2"]["parts"]) == ("single", 1)
    assert by_ref["gw-2"]["message_ids"] == resp_ids["gw-2"]

    numbers = json.loads(stats.read_text())
    assert {k: numbers[k] for k in (
        "submits", "accepted", "rejected_total", "throttled", "messages_completed",
        "duplicate_client_refs", "duplicate_parts", "incomplete_messages", "receipts_sent",
        "lost")} == {
        "submits": 4, "accepted": 4, "rejected_total": 0, "throttled": 0,
        "messages_completed": 2, "duplicate_client_refs": 0, "duplicate_parts": 0,
        "incomplete_messages": 0, "receipts_sent": 4, "lost": 0}


async def test_injected_throttling_and_duplicates_are_counted(
    start_smsc: Callable[..., Awaitable[Started]], tmp_path: Path,
) -> None:
    stats = tmp_path / "stats.json"
    # A bucket of 2 that refills one token in 1000 s: exactly two get through.
    process, port = await start_smsc("--stats", str(stats), "--max-tps", "0.001", "--burst", "2")
    smsc = await smpp34.Client("127.0.0.1", port, "gateway", "secret", bind_type="TRX").connect()
    ref = [smpp34.Tlv(CLIENT_REF, b"same")]
    outcomes = []
    for _ in range(3):  # a refusal comes back as a submit_sm_resp: typed, not raised
        resp = await smsc.submit_sm("316", b"hi", source_addr="GW", tlvs=ref)
        outcomes.append(resp.command_status)
    await smsc.unbind()
    assert await _stop(process) == 0

    assert outcomes == [smpp34.ESME_ROK, smpp34.ESME_ROK, smpp34.ESME_RTHROTTLED]
    numbers = json.loads(stats.read_text())
    assert (numbers["submits"], numbers["accepted"], numbers["messages_completed"]) == (3, 2, 2)
    assert numbers["throttled"] == 1 and numbers["rejected"] == {"max_tps": 1}
    assert numbers["duplicate_client_refs"] == 1  # "same" completed twice


async def test_a_bind_with_another_system_id_is_refused(
    start_smsc: Callable[..., Awaitable[Started]], tmp_path: Path,
) -> None:
    stats = tmp_path / "stats.json"
    process, port = await start_smsc("--stats", str(stats), "--system-id", "gateway")
    smsc = await smpp34.Client("127.0.0.1", port, "intruder", "x", bind_type="TRX").connect()
    async with asyncio.timeout(30):
        while not isinstance(await smsc.next(), smpp34.Disconnected):
            pass
    with contextlib.suppress(smpp34.SmppError):
        await smsc.unbind()
    assert await _stop(process) == 0
    numbers = json.loads(stats.read_text())
    assert (numbers["binds"], numbers["binds_refused"], numbers["accepted"]) == (1, 1, 0)
