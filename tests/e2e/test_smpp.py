"""The whole gateway sending through SMPP 3.4 to the SMSC simulator (its own process)."""
# ruff: noqa: RUF001 - Cyrillic text is the point of a UCS-2 test

from __future__ import annotations

import asyncio
import collections
import json

import asyncpg
import grpc
import pytest

from smsgw.proto import admin_pb2 as admin
from smsgw.proto import admin_pb2_grpc
from smsgw.proto import sms_pb2 as pb
from tests.conftest import client_for, new_tenant_key
from tests.e2e.support import request, stream_accepted

pytestmark = pytest.mark.e2e


def smpp_provider(port: int, **options: object) -> str:
    """The provider table, as SMSGW_PROVIDERS carries it; the password stays in the env."""
    return json.dumps([{"name": "smsc", "kind": "smpp", "host": "127.0.0.1", "port": port,
                        "system_id": "ghasi", "password_env": "SMSC_TEST_PASSWORD",
                        **options}])


@pytest.fixture(autouse=True)
def smsc_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMSC_TEST_PASSWORD", "s3cr3t!")


async def wait_all_final(conn: asyncpg.Connection, seconds: float = 90) -> None:
    try:
        async with asyncio.timeout(seconds):
            while await conn.fetchval(
                    "SELECT count(*) FROM messages WHERE status IN (1, 2, 3)"):
                await asyncio.sleep(0.1)
    except TimeoutError:
        stuck = await conn.fetch("SELECT status, attempts, provider_message_id, error_code "
                                 "FROM messages WHERE status IN (1, 2, 3) LIMIT 5")
        raise AssertionError(f"not final: {[tuple(r) for r in stuck]}") from None


async def test_a_long_ucs2_message_is_split_and_reassembled_exactly_at_the_smsc(
        start_server, start_smsc, database_url):
    smsc = await start_smsc(receipt_delay_ms=20)
    server = await start_server(providers=smpp_provider(smsc.port, window=16))
    key = await new_tenant_key(database_url)
    text = "Ваш код подтверждения: 4711. Никому его не сообщайте! 🔐 " * 4
    async with client_for(server.address, key) as c:
        sent = await c.stub.SendMessage(request(body=text, traffic_class=pb.TRAFFIC_CLASS_OTP),
                                        metadata=c.auth)
        assert sent.encoding == pb.ENCODING_UCS2 and sent.segments > 1
        async with asyncio.timeout(30):
            async for event in c.stub.WatchMessageStatus(
                    pb.WatchMessageStatusRequest(message_ids=[sent.id]), metadata=c.auth):
                if event.HasField("event") and event.event.status == pb.MESSAGE_STATUS_DELIVERED:
                    break
        final = await c.stub.GetMessage(pb.GetMessageRequest(id=sent.id), metadata=c.auth)
    assert (final.provider, final.route, final.traffic_class) == ("smsc", "default",
                                                                 pb.TRAFFIC_CLASS_OTP)
    await asyncio.sleep(0.3)  # the journal is flushed every 100 ms
    (received,) = [m for m in smsc.messages() if m["client_ref"] == sent.id]
    assert received["text"] == text and received["data_coding"] == 8
    # udh8 by default: the parts sent are the segments the message was counted for.
    assert received["parts"] == sent.segments and received["mode"] == "udh8"


async def test_a_message_is_counted_for_the_parts_a_udh16_provider_sent(
        start_server, start_smsc, database_url):
    """200 UCS-2 characters are 3 segments of 67 at accept, and 4 parts of 66 with udh16."""
    smsc = await start_smsc(receipt_delay_ms=20)
    server = await start_server(providers=smpp_provider(smsc.port, concatenation="udh16"))
    key = await new_tenant_key(database_url)
    async with client_for(server.address, key) as c:
        sent = await c.stub.SendMessage(request(body="я" * 200), metadata=c.auth)
        assert (sent.encoding, sent.segments) == (pb.ENCODING_UCS2, 3)
        async with asyncio.timeout(30):
            async for event in c.stub.WatchMessageStatus(
                    pb.WatchMessageStatusRequest(message_ids=[sent.id]), metadata=c.auth):
                if event.HasField("event") and event.event.status == pb.MESSAGE_STATUS_DELIVERED:
                    break
        final = await c.stub.GetMessage(pb.GetMessageRequest(id=sent.id), metadata=c.auth)
    await asyncio.sleep(0.3)  # the journal is flushed every 100 ms
    (received,) = [m for m in smsc.messages() if m["client_ref"] == sent.id]
    assert (received["parts"], received["mode"]) == (4, "udh16")
    assert final.segments == received["parts"]


async def test_a_relay_killed_under_smpp_load_loses_nothing_and_duplicates_are_counted(
        start_server, start_smsc, database_url):
    """SIGKILL the gateway mid-batch; a second one takes the leases over.

    Every accepted message reaches a final state: DELIVERED (the SMSC holds
    receipts for a session that vanished until the same system_id binds
    again), or EXPIRED by the receipt timeout when the dead process had
    already acknowledged its receipt. Sends in flight at the kill may reach
    the SMSC twice; the SMSC's journal, keyed by our message id as the client
    reference, counts them.
    """
    smsc = await start_smsc(receipt_delay_ms=20, latency_ms=5)
    providers = smpp_provider(smsc.port, window=32)
    victim = await start_server(providers=providers, relay_lease_seconds=2)
    key = await new_tenant_key(database_url)
    async with client_for(victim.address, key) as c:
        accepted = await stream_accepted(c, chunks=4, per_chunk=500)
    assert len(accepted) == 2000
    conn = await asyncpg.connect(database_url)
    try:
        async with asyncio.timeout(60):  # kill once some are sent and others in flight
            while await conn.fetchval("SELECT count(*) FROM messages WHERE status >= 3") < 300:
                await asyncio.sleep(0.01)
        victim.process.kill()
        await asyncio.to_thread(victim.process.wait)
        takeover = await start_server(providers=providers, relay_lease_seconds=2,
                                      receipt_timeout_seconds=5)
        await wait_all_final(conn, 40)
        states = dict(await conn.fetch("SELECT status, count(*) FROM messages GROUP BY 1"))
        outbox = await conn.fetchval("SELECT count(*) FROM outbox")
    finally:
        await conn.close()
    await asyncio.sleep(0.3)
    submissions = collections.Counter(m["client_ref"] for m in smsc.messages())
    duplicates = sum(n - 1 for n in submissions.values())
    assert takeover.process.poll() is None
    assert set(states) <= {4, 8} and sum(states.values()) == 2000 and outbox == 0
    assert set(submissions) == set(accepted)  # every message reached the SMSC
    print(f"\nduplicate submissions after the kill: {duplicates} of 2000; "
          f"receipts lost with the killed process: {states.get(8, 0)}")


async def test_exhausted_retries_reach_the_dead_letters_and_an_admin_replays_them_once(
        start_server, start_smsc, database_url):
    broken = await start_smsc(throttle_rate=1.0)  # the carrier throttles everything
    providers = smpp_provider(broken.port, throttle_retries=0, retry_max_attempts=2,
                              retry_base_seconds=0.01, retry_cap_seconds=0.02)
    server = await start_server(providers=providers)
    key = await new_tenant_key(database_url)
    admin_key = await new_tenant_key(database_url, "ops", scopes=("admin",))
    async with client_for(server.address, key) as c:
        ids = [(await c.stub.SendMessage(request(), metadata=c.auth)).id for _ in range(3)]
    conn = await asyncpg.connect(database_url)
    try:
        await wait_all_final(conn, 30)
    finally:
        await conn.close()

    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = admin_pb2_grpc.SmsAdminServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.ListDeadLetters(admin.ListDeadLettersRequest(),
                                       metadata=(("authorization", f"Bearer {key}"),))
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        auth = (("authorization", f"Bearer {admin_key}"),)
        listed = await stub.ListDeadLetters(admin.ListDeadLettersRequest(), metadata=auth)
        assert sorted(d.message_id for d in listed.dead_letters) == sorted(ids)
        letter = listed.dead_letters[0]
        assert [a.attempt for a in letter.attempts] == [1, 2]
        assert {a.error.code for a in letter.attempts} == {"SMPP_THROTTLED"}
        assert letter.request.body == "hello" and letter.provider == "smsc"

        first = await stub.ReplayDeadLetters(admin.ReplayDeadLettersRequest(
            filter=admin.DeadLetterFilter(provider="smsc", pending_only=True)), metadata=auth)
        again = await stub.ReplayDeadLetters(admin.ReplayDeadLettersRequest(
            message_ids=ids), metadata=auth)
    assert len(first.results) == 3 and not any(r.already_replayed for r in first.results)
    assert all(r.already_replayed for r in again.results)
    assert ({r.replay_message_id for r in first.results}
            == {r.replay_message_id for r in again.results})
