"""Scheduled sends, validity and what reaches the carrier, over gRPC against real processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from smsgw.proto import sms_pb2 as pb
from tests.conftest import client_for, new_tenant_key
from tests.e2e.support import details, request, violated_fields
from tests.e2e.test_smpp import smpp_provider

pytestmark = pytest.mark.e2e
WAIT = 90  # seconds: a bound on hanging, never a measurement
FINAL = {pb.MESSAGE_STATUS_SENT, pb.MESSAGE_STATUS_DELIVERED}


@pytest.fixture(autouse=True)
def smsc_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSC_TEST_PASSWORD", "s3cr3t!")  # smpp_provider names this variable


def timestamp(at: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp


def aware(stamp: timestamp_pb2.Timestamp) -> dt.datetime:
    return stamp.ToDatetime(tzinfo=dt.UTC)


async def wait_for(client, message_id: str, statuses: set[int]) -> pb.Message:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(WAIT):
        while True:
            message = await client.stub.GetMessage(pb.GetMessageRequest(id=message_id),
                                                   metadata=client.auth)
            if message.status in statuses:
                return message
            await asyncio.sleep(0.1)


async def scheduled_ids(client) -> set[str]:  # type: ignore[no-untyped-def]
    page = await client.stub.ListMessages(pb.ListMessagesRequest(scheduled_only=True),
                                          metadata=client.auth)
    return {m.id for m in page.messages}


async def test_a_scheduled_send_waits_through_a_restart_and_a_canceled_one_never_leaves(
        start_server, database_url) -> None:
    server = await start_server()
    key = await new_tenant_key(database_url)
    send_at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=15)).replace(microsecond=0)
    async with client_for(server.address, key) as c:
        kept = await c.stub.SendMessage(request(send_time=timestamp(send_at)), metadata=c.auth)
        dropped = await c.stub.SendMessage(request(send_time=timestamp(send_at)),
                                           metadata=c.auth)
        now = await c.stub.SendMessage(request(), metadata=c.auth)
        assert kept.status == pb.MESSAGE_STATUS_QUEUED and aware(kept.send_time) == send_at
        assert kept.HasField("expire_time") and aware(kept.expire_time) > send_at
        assert await scheduled_ids(c) == {kept.id, dropped.id}  # not the one sent at once
        canceled = await c.stub.CancelMessage(pb.CancelMessageRequest(id=dropped.id),
                                              metadata=c.auth)
        assert canceled.status == pb.MESSAGE_STATUS_CANCELED
        assert await scheduled_ids(c) == {kept.id}
        await wait_for(c, now.id, FINAL)
    await asyncio.to_thread(server.stop)

    conn = await asyncpg.connect(database_url)
    try:
        # Durable while no gateway runs: still waiting, its outbox row due at its send_time.
        due = await conn.fetchval("SELECT due_at FROM outbox WHERE message_id = $1::uuid",
                                  kept.id)
        assert due == send_at and dt.datetime.now(dt.UTC) < send_at, "restart too slow"
        server = await start_server()
        async with client_for(server.address, key) as c:
            sent = await wait_for(c, kept.id, FINAL)
            assert aware(sent.sent_time) >= send_at  # never before its time
            assert (await c.stub.GetMessage(pb.GetMessageRequest(id=dropped.id),
                                            metadata=c.auth)).status == pb.MESSAGE_STATUS_CANCELED
            assert await scheduled_ids(c) == set()
        history = await conn.fetch("SELECT status FROM message_events WHERE message_id = "
                                   "$1::uuid ORDER BY id", dropped.id)
        assert [r["status"] for r in history] == [pb.MESSAGE_STATUS_QUEUED,
                                                  pb.MESSAGE_STATUS_CANCELED]
    finally:
        await conn.close()


async def test_a_send_time_too_far_ahead_is_refused(start_server, database_url) -> None:
    server = await start_server(schedule_max_ahead_seconds=3600)
    key = await new_tenant_key(database_url)
    too_far = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    async with client_for(server.address, key) as c:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await c.stub.SendMessage(request(send_time=timestamp(too_far)), metadata=c.auth)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(details(caught.value)) == ["send_time"]


async def test_a_message_the_carrier_cannot_take_in_time_expires_and_is_never_sent(
        start_server, start_smsc, database_url) -> None:
    # The SMSC refuses our binds: no session, nothing the carrier could ever see.
    smsc = await start_smsc(system_id="somebody-else")
    server = await start_server(providers=smpp_provider(smsc.port, bind_wait_seconds=0.5))
    key = await new_tenant_key(database_url)
    async with client_for(server.address, key) as c:
        sent = await c.stub.SendMessage(request(ttl=duration_pb2.Duration(seconds=2)),
                                        metadata=c.auth)
        final = await wait_for(c, sent.id, {pb.MESSAGE_STATUS_EXPIRED})
    assert final.error.code == "VALIDITY_EXPIRED"
    # A submit may slip in between a bind and its refusal; the SMSC takes none.
    assert smsc.stop()["accepted"] == 0 and smsc.messages() == []


_RELATIVE = re.compile(r"0000(\d\d)(\d\d)(\d\d)(\d\d)000R")


def seconds_of(validity: str) -> int:
    match = _RELATIVE.fullmatch(validity)
    assert match is not None, validity
    days, hours, minutes, seconds = map(int, match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


async def test_the_validity_left_reaches_the_smsc_as_validity_period(
        start_server, start_smsc, database_url) -> None:
    smsc = await start_smsc(read_validity=True, receipt_delay_ms=20)
    server = await start_server(providers=smpp_provider(smsc.port))
    key = await new_tenant_key(database_url)
    async with client_for(server.address, key) as c:
        hour = await c.stub.SendMessage(request(ttl=duration_pb2.Duration(seconds=3600)),
                                        metadata=c.auth)
        otp = await c.stub.SendMessage(request(traffic_class=pb.TRAFFIC_CLASS_OTP),
                                       metadata=c.auth)
        for message in (hour, otp):
            await wait_for(c, message.id, FINAL)
    async with asyncio.timeout(WAIT):  # the journal is flushed every 100 ms
        while len(journal := {m["client_ref"]: m for m in smsc.messages()}) < 2:
            await asyncio.sleep(0.1)
    assert 3500 < seconds_of(journal[hour.id]["validity_period"]) <= 3600
    assert 500 < seconds_of(journal[otp.id]["validity_period"]) <= 600  # OTP: 10 minutes


async def test_the_smsc_honours_a_validity_that_ends_before_delivery(
        start_server, start_smsc, database_url) -> None:
    # Receipts take 5 s at this SMSC; a 2 s validity runs out first: EXPIRED there.
    smsc = await start_smsc(read_validity=True, receipt_delay_ms=5000)
    server = await start_server(providers=smpp_provider(smsc.port))
    key = await new_tenant_key(database_url)
    async with client_for(server.address, key) as c:
        sent = await c.stub.SendMessage(request(ttl=duration_pb2.Duration(seconds=2)),
                                        metadata=c.auth)
        final = await wait_for(c, sent.id, {pb.MESSAGE_STATUS_UNDELIVERED})
    assert final.error.code == "SMPP_EXPIRED"  # as the receipt said
    assert smsc.stop()["expired"] == 1
