"""The Python client package (clients/python) against real server processes."""

from __future__ import annotations

import asyncio
import datetime as dt

import grpc
import pytest

from ghasi_sms_client import AsyncSmsClient, LimitExceeded, RetryPolicy, SmsClient, SmsError, pb
from tests.conftest import free_port, new_tenant_key
from tests.e2e.test_tenant_limits import set_limits

pytestmark = pytest.mark.e2e


async def test_async_client_sends_reads_lists_and_watches(start_server, database_url):
    server = await start_server()
    async with AsyncSmsClient(server.address, await new_tenant_key(database_url)) as sms:
        message = await sms.send("+16502530000", "Your code is 123456", client_reference="otp")
        again = await sms.send("+16502530000", "Your code is 123456", client_reference="otp",
                               idempotency_key=message.idempotency_key)
        statuses = [e.status async for e in sms.watch([message.id])]
        fetched = await sms.get(message.id)
        listed = [m.id async for m in sms.list(page_size=1)]
        with pytest.raises(SmsError) as refused:
            await sms.send("+1", "")
        with pytest.raises(SmsError) as late:
            await sms.cancel(message.id)
    assert again.id == message.id and len(message.idempotency_key) == 36
    assert statuses == [pb.MESSAGE_STATUS_QUEUED, pb.MESSAGE_STATUS_SENDING,
                        pb.MESSAGE_STATUS_SENT, pb.MESSAGE_STATUS_DELIVERED]
    assert fetched.status == pb.MESSAGE_STATUS_DELIVERED and listed == [message.id]
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {v.field for v in refused.value.violations} == {"to", "body"}
    assert (late.value.code, late.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                   "NOT_CANCELABLE")


async def test_bulk_helper_gives_one_result_per_item_in_order(start_server, database_url):
    server = await start_server(relay_enabled=False)
    items = [{"to": "+16502530000" if i % 4 else "bad", "body": f"n{i}",
              "client_reference": str(i)} for i in range(1100)]
    async with AsyncSmsClient(server.address, await new_tenant_key(database_url)) as sms:
        results = [r async for r in sms.send_many(items, chunk_size=200, max_in_flight=400)]
    assert [r.index for r in results] == list(range(1100))
    assert [r.client_reference for r in results] == [str(i) for i in range(1100)]
    assert sum(r.HasField("error") for r in results) == 275


async def test_watch_resumes_across_a_server_restart_without_gaps(start_server, database_url):
    address = f"127.0.0.1:{free_port()}"
    first = await start_server(grpc_address=address, relay_enabled=False)
    key = await new_tenant_key(database_url)
    retry = RetryPolicy(max_attempts=100, base_seconds=0.05, cap_seconds=0.3)
    async with AsyncSmsClient(address, key, retry=retry) as sms:
        ids = [(await sms.send("+16502530000", f"m{i}")).id for i in range(5)]
        seen: list[tuple[str, int]] = []

        async def follow() -> None:
            async for event in sms.watch(ids):
                seen.append((event.message_id, event.status))

        watching = asyncio.create_task(follow())
        async with asyncio.timeout(30):
            while len(seen) < 5:
                await asyncio.sleep(0.05)
        await asyncio.to_thread(first.stop)  # the stream ends in-band; the client reconnects
        await start_server(grpc_address=address)  # this one relays: the rest of the story
        await asyncio.wait_for(watching, 60)
    assert len(seen) == len(set(seen)) == 20
    assert {s for _, s in seen} == {pb.MESSAGE_STATUS_QUEUED, pb.MESSAGE_STATUS_SENDING,
                                    pb.MESSAGE_STATUS_SENT, pb.MESSAGE_STATUS_DELIVERED}


async def test_a_send_retries_until_the_server_is_up_and_sends_once(start_server, database_url):
    address = f"127.0.0.1:{free_port()}"
    key = await new_tenant_key(database_url)
    retry = RetryPolicy(max_attempts=200, base_seconds=0.05, cap_seconds=0.2)
    async with AsyncSmsClient(address, key, retry=retry, timeout=5) as sms:
        sending = asyncio.create_task(sms.send("+16502530000", "eventually"))
        await asyncio.sleep(0.5)
        assert not sending.done()
        await start_server(grpc_address=address, relay_enabled=False)
        message = await asyncio.wait_for(sending, 60)
        listed = [m.id async for m in sms.list()]
    assert listed == [message.id]


async def test_sync_client_does_the_same_without_an_event_loop(start_server, database_url):
    server = await start_server()
    key = await new_tenant_key(database_url)

    def use_it() -> tuple[list[int], int, list[str]]:
        with SmsClient(server.address, key) as sms:
            message = sms.send("+16502530000", "blocking hello")
            statuses = [e.status for e in sms.watch([message.id])]
            results = list(sms.send_many(
                [{"to": "+16502530000", "body": str(i)} for i in range(30)], chunk_size=7))
            return statuses, sum(r.HasField("message") for r in results), [
                m.id for m in sms.list(statuses=[pb.MESSAGE_STATUS_DELIVERED])]

    statuses, accepted, delivered = await asyncio.to_thread(use_it)
    assert statuses[-1] == pb.MESSAGE_STATUS_DELIVERED and accepted == 30
    assert len(delivered) >= 1


async def test_a_scheduled_otp_comes_back_as_asked_and_lists_as_scheduled(start_server,
                                                                          database_url):
    server = await start_server(relay_enabled=False)  # nothing leaves: "now" stays QUEUED
    key = await new_tenant_key(database_url)
    send_at = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    expire_at = send_at + dt.timedelta(minutes=5)
    async with AsyncSmsClient(server.address, key) as sms:
        otp = await sms.send("+16502530000", "Your code is 123456", traffic_class="otp",
                             send_time=send_at, expire_time=expire_at)
        again = await sms.send("+16502530000", "Your code is 123456", traffic_class="otp",
                               send_time=send_at, expire_time=expire_at,
                               idempotency_key=otp.idempotency_key)
        # Another zone names the same instant; ttl counts from send_time.
        sale = await sms.send("+16502530000", "Flash sale", send_time=send_at.astimezone(
            dt.timezone(dt.timedelta(hours=-7))), traffic_class=pb.TRAFFIC_CLASS_MARKETING,
            ttl=dt.timedelta(hours=2))
        now = await sms.send("+16502530000", "right away")
        scheduled = [m.id async for m in sms.list(scheduled_only=True)]
        everything = {m.id async for m in sms.list()}
        await sms.cancel(sale.id)
        still_scheduled = [m.id async for m in sms.list(scheduled_only=True)]
        answered: list[pb.SendMessageResult] = []
        with pytest.raises(ValueError, match="timezone-aware") as naive:
            async for result in sms.send_many([
                    {"to": "+16502530000", "body": "fine"},
                    {"to": "+16502530000", "body": "naive", "send_time": send_at.replace(
                        tzinfo=None)},
                    {"to": "+16502530000", "body": "never sent"}]):
                answered.append(result)

    def in_bulk_and_blocking() -> tuple[list[pb.SendMessageResult], set[str]]:
        with SmsClient(server.address, key) as blocking:
            results = list(blocking.send_many([
                {"to": "+16502530000", "body": f"reminder {i}", "traffic_class": "transactional",
                 "send_time": send_at, "ttl": dt.timedelta(minutes=30)} for i in range(3)]))
            return results, {m.id for m in blocking.list(scheduled_only=True)}

    results, listed_blocking = await asyncio.to_thread(in_bulk_and_blocking)
    assert otp.traffic_class == pb.TRAFFIC_CLASS_OTP and otp.status == pb.MESSAGE_STATUS_QUEUED
    assert otp.send_time.ToDatetime(tzinfo=dt.UTC) == send_at
    assert otp.expire_time.ToDatetime(tzinfo=dt.UTC) == expire_at
    assert again.id == otp.id and len(otp.idempotency_key) == 36
    assert sale.traffic_class == pb.TRAFFIC_CLASS_MARKETING
    assert sale.send_time.ToDatetime(tzinfo=dt.UTC) == send_at
    assert sale.expire_time.ToDatetime(tzinfo=dt.UTC) == send_at + dt.timedelta(hours=2)
    assert not now.HasField("send_time") and now.traffic_class == pb.TRAFFIC_CLASS_TRANSACTIONAL
    assert sorted(scheduled) == sorted([otp.id, sale.id]) and now.id in everything
    assert still_scheduled == [otp.id]
    # A bad item ends the stream there: the ones before it are answered, none after it.
    assert [(r.index, r.message.body) for r in answered] == [(0, "fine")]
    assert "at send_many item 1" in naive.value.__notes__[0]
    bulk = [r.message for r in results]
    assert all(r.HasField("message") for r in results)
    assert {m.traffic_class for m in bulk} == {pb.TRAFFIC_CLASS_TRANSACTIONAL}
    assert {m.send_time.ToDatetime(tzinfo=dt.UTC) for m in bulk} == {send_at}
    assert {m.expire_time.ToDatetime(tzinfo=dt.UTC) for m in bulk} == {
        send_at + dt.timedelta(minutes=30)}
    assert listed_blocking == {otp.id, *(m.id for m in bulk)}


def test_timing_mistakes_are_refused_before_anything_is_sent() -> None:
    """No server: a naive datetime or two validities never reach the wire."""
    with SmsClient("127.0.0.1:1", "sk_unused") as sms:
        with pytest.raises(ValueError, match="send_time must be a timezone-aware"):
            sms.send("+16502530000", "x", send_time=dt.datetime(2030, 6, 1, 17, 30))
        with pytest.raises(ValueError, match="expire_time must be a timezone-aware"):
            sms.send("+16502530000", "x", expire_time=dt.datetime(2030, 6, 1, 17, 30))
        with pytest.raises(ValueError, match="expire_time or ttl, not both"):
            sms.send("+16502530000", "x", expire_time=dt.datetime.now(dt.UTC),
                     ttl=dt.timedelta(minutes=5))
        with pytest.raises(ValueError, match="unknown traffic class 'promo'"):
            sms.send("+16502530000", "x", traffic_class="promo")


async def test_dataclass_flavour_interoperates_over_grpclib(start_server, database_url):
    """betterproto2 dataclasses on grpclib talk standard gRPC to our grpcio server."""
    from grpclib.client import Channel

    from ghasi_sms_client.dataclasses.ghasi.sms import v1 as sms

    server = await start_server()
    key = await new_tenant_key(database_url)
    host, port = server.address.rsplit(":", 1)
    channel = Channel(host, int(port))
    try:
        stub = sms.SmsServiceStub(channel, metadata={"authorization": f"Bearer {key}"})
        message = await stub.send_message(sms.SendMessageRequest(
            to="+16502530000", body="from a dataclass", idempotency_key="dc-1",
            metadata={"via": "grpclib"}))
        events = [item.event async for item in stub.watch_message_status(
            sms.WatchMessageStatusRequest(message_ids=[message.id])) if item.event]
    finally:
        channel.close()
    async with AsyncSmsClient(server.address, key) as grpcio_client:
        same = await grpcio_client.get(message.id)
    assert isinstance(message, sms.Message) and message.metadata == {"via": "grpclib"}
    assert message.status == sms.MessageStatus.QUEUED
    assert [e.status for e in events][-1] == sms.MessageStatus.DELIVERED
    assert (same.id, same.body, dict(same.metadata)) == (message.id, "from a dataclass",
                                                          {"via": "grpclib"})


async def test_limits_surface_as_a_typed_error_with_the_retry_delay(start_server, database_url):
    server = await start_server()
    admin = await new_tenant_key(database_url, scopes=("admin",))
    rated, quota = "py-rated", "py-quota"
    rated_key = await new_tenant_key(database_url, rated)
    quota_key = await new_tenant_key(database_url, quota)
    await set_limits(server.address, admin, rated, rate_per_second=0.001, burst=1)
    await set_limits(server.address, admin, quota, daily_segment_quota=1)
    async with AsyncSmsClient(server.address, rated_key) as sms:
        await sms.send("+16502530000", "first")
        with pytest.raises(LimitExceeded) as limited:
            await sms.send("+16502530000", "second")

    def over_quota() -> tuple[pb.Usage, LimitExceeded]:
        with SmsClient(server.address, quota_key) as sms:
            sms.send("+16502530000", "first")
            try:
                sms.send("+16502530000", "second")
            except LimitExceeded as error:
                return sms.usage(), error
        raise AssertionError("the quota did not refuse")

    usage, exceeded = await asyncio.to_thread(over_quota)
    assert limited.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert limited.value.rate_limited and limited.value.reason == "RATE_LIMITED"
    assert limited.value.retry_after is not None and limited.value.retry_after > 60
    assert exceeded.quota_exceeded and exceeded.reset_time is not None
    assert exceeded.retry_after is not None and exceeded.retry_after > 0
    assert (usage.daily.used_segments, usage.daily.limit_segments) == (1, 1)
