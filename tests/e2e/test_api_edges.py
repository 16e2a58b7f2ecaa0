"""A real server process: bulk with bad items, auth, tenant isolation, bad input, operations."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from smsgw.proto import sms_pb2 as pb
from tests.conftest import client_for, new_tenant_key
from tests.e2e.support import details, reason, request, violated_fields

pytestmark = pytest.mark.e2e


def _mixed_items(prefix: str, count: int) -> list[pb.SendMessageRequest]:
    """Every third item is bad in a different way."""
    items = []
    for i in range(count):
        kind = i % 6
        if kind == 1:
            items.append(request(to="12", key=f"{prefix}-{i}", client_reference=f"r{i}"))
        elif kind == 3:
            items.append(request(body="", key=f"{prefix}-{i}", client_reference=f"r{i}"))
        elif kind == 5:
            items.append(pb.SendMessageRequest(to="+16502530000", body="x",
                                               client_reference=f"r{i}"))
        else:
            items.append(request(key=f"{prefix}-{i}", client_reference=f"r{i}"))
    return items


def _check_results(results: list[pb.SendMessageResult], count: int) -> None:
    assert [r.index for r in results] == list(range(count))
    assert [r.client_reference for r in results] == [f"r{i}" for i in range(count)]
    expected_field = {1: "to", 3: "body", 5: "idempotency_key"}
    for r in results:
        field = expected_field.get(r.index % 6)
        if field is None:
            assert r.HasField("message"), r
            assert r.message.status == pb.MESSAGE_STATUS_QUEUED
        else:
            assert r.HasField("error"), r
            assert r.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
            assert violated_fields(r.error) == [field]
            assert reason(r.error) == "INVALID_ARGUMENT"


async def test_bulk_stream_answers_every_item_once_and_survives_bad_ones(
        start_server, database_url):
    server = await start_server(relay_enabled=False)
    items = _mixed_items("bulk", 240)

    async def chunks():
        for start in range(0, len(items), 50):  # uneven last chunk on purpose
            yield pb.SendMessagesRequest(items=items[start:start + 50])

    async with client_for(server.address, await new_tenant_key(database_url)) as c:
        results = [r async for resp in c.stub.SendMessages(chunks(), metadata=c.auth)
                   for r in resp.results]
        stored = await c.stub.ListMessages(pb.ListMessagesRequest(page_size=1000),
                                           metadata=c.auth)
    _check_results(results, 240)
    assert len(stored.messages) == 120


async def test_batch_send_gives_per_item_results_and_refuses_oversized_batches(
        start_server, database_url):
    server = await start_server(relay_enabled=False)
    async with client_for(server.address, await new_tenant_key(database_url)) as c:
        batch = await c.stub.BatchSendMessages(
            pb.BatchSendMessagesRequest(requests=_mixed_items("batch", 12)), metadata=c.auth)
        with pytest.raises(grpc.aio.AioRpcError) as too_big:
            await c.stub.BatchSendMessages(pb.BatchSendMessagesRequest(
                requests=[request() for _ in range(1001)]), metadata=c.auth)
        stored = await c.stub.ListMessages(pb.ListMessagesRequest(), metadata=c.auth)
    _check_results(list(batch.results), 12)
    assert too_big.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(details(too_big.value)) == ["requests"]
    assert len(stored.messages) == 6  # the oversized batch wrote nothing


async def test_every_rpc_refuses_a_missing_or_wrong_key(start_server, database_url):
    server = await start_server()
    message_id = str(uuid.uuid4())
    for key in ("", "sk_not-a-real-key"):
        async with client_for(server.address, key) as c:
            auth = c.auth if key else ()
            calls = [
                c.stub.SendMessage(request(), metadata=auth),
                c.stub.BatchSendMessages(pb.BatchSendMessagesRequest(requests=[request()]),
                                         metadata=auth),
                c.stub.GetMessage(pb.GetMessageRequest(id=message_id), metadata=auth),
                c.stub.ListMessages(pb.ListMessagesRequest(), metadata=auth),
                c.stub.CancelMessage(pb.CancelMessageRequest(id=message_id), metadata=auth),
            ]
            for call in calls:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call
                assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                _ = [x async for x in c.stub.WatchMessageStatus(
                    pb.WatchMessageStatusRequest(), metadata=auth)]
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED

            # The server refuses at once; a write may race that refusal on the client side,
            # so ask the call for the status the server sent rather than the write's error.
            stream = c.stub.SendMessages(metadata=auth)
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await stream.write(pb.SendMessagesRequest(items=[request()]))
            assert await stream.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_tenant_never_sees_another_tenants_messages(start_server, database_url):
    server = await start_server(relay_enabled=False)
    key_a, key_b = await new_tenant_key(database_url), await new_tenant_key(database_url)
    async with client_for(server.address, key_a) as a, client_for(server.address, key_b) as b:
        mine = await a.stub.SendMessage(request(key="shared-key"), metadata=a.auth)
        theirs = await b.stub.SendMessage(request(key="shared-key"), metadata=b.auth)
        assert theirs.id != mine.id  # keys are scoped per tenant
        for call in (b.stub.GetMessage(pb.GetMessageRequest(id=mine.id), metadata=b.auth),
                     b.stub.CancelMessage(pb.CancelMessageRequest(id=mine.id), metadata=b.auth)):
            with pytest.raises(grpc.aio.AioRpcError) as hidden:
                await call
            assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            _ = [x async for x in b.stub.WatchMessageStatus(
                pb.WatchMessageStatusRequest(message_ids=[mine.id]), metadata=b.auth)]
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await b.stub.ListMessages(pb.ListMessagesRequest(), metadata=b.auth)
        still_queued = await a.stub.GetMessage(pb.GetMessageRequest(id=mine.id),
                                               metadata=a.auth)
    assert [m.id for m in listed.messages] == [theirs.id]
    assert still_queued.status == pb.MESSAGE_STATUS_QUEUED


@pytest.mark.parametrize(("rpc", "payload", "field"), [
    ("GetMessage", pb.GetMessageRequest(id="not-a-uuid"), "id"),
    ("CancelMessage", pb.CancelMessageRequest(id=""), "id"),
    ("ListMessages", pb.ListMessagesRequest(page_size=-1), "page_size"),
    ("ListMessages", pb.ListMessagesRequest(page_token="garbage"), "page_token"),
    ("ListMessages", pb.ListMessagesRequest(statuses=[42]), "statuses[0]"),
    ("ListMessages", pb.ListMessagesRequest(to="nonsense"), "to"),
    ("SendMessage", pb.SendMessageRequest(to="+16502530000", body="x" * 1601,
                                          idempotency_key="k"), "body"),
    ("SendMessage", pb.SendMessageRequest(to="+16502530000", body="a\x00b",
                                          idempotency_key="k"), "body"),
    ("SendMessage", pb.SendMessageRequest(to="+16502530000", body="hi", sender="way-too-long-id",
                                          idempotency_key="k"), "sender"),
])
async def test_bad_input_is_invalid_argument_naming_the_field(
        start_server, database_url, rpc, payload, field):
    server = await start_server(relay_enabled=False)
    async with client_for(server.address, await new_tenant_key(database_url)) as c:
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await getattr(c.stub, rpc)(payload, metadata=c.auth)
        stored = await c.stub.ListMessages(pb.ListMessagesRequest(), metadata=c.auth)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(details(bad.value)) == [field]
    assert list(stored.messages) == []


async def test_bad_watch_requests_and_undecodable_bytes_are_invalid_argument(
        start_server, database_url):
    server = await start_server(relay_enabled=False)
    async with client_for(server.address, await new_tenant_key(database_url)) as c:
        for bad_request, field in ((pb.WatchMessageStatusRequest(after_cursor="c1.zz"),
                                    "after_cursor"),
                                   (pb.WatchMessageStatusRequest(message_ids=["x"]),
                                    "message_ids[0]")):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                _ = [x async for x in c.stub.WatchMessageStatus(bad_request, metadata=c.auth)]
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert violated_fields(details(bad.value)) == [field]
        raw = c.channel.unary_unary("/ghasi.sms.v1.SmsService/SendMessage")
        with pytest.raises(grpc.aio.AioRpcError) as undecodable:
            await raw(b"\x0a\x03\xff\xfe\xfd", metadata=c.auth)  # invalid UTF-8 in `to`
    assert undecodable.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(details(undecodable.value)) == ["request"]


async def test_health_reflection_and_metrics(start_server, database_url):
    server = await start_server()
    async with client_for(server.address, await new_tenant_key(database_url)) as c:
        await c.stub.SendMessage(request(), metadata=c.auth)
        health = await health_pb2_grpc.HealthStub(c.channel).Check(
            health_pb2.HealthCheckRequest(service="ghasi.sms.v1.SmsService"))
        reflection = reflection_pb2_grpc.ServerReflectionStub(c.channel)

        async def ask():
            yield reflection_pb2.ServerReflectionRequest(list_services="")
        services = [s.name async for r in reflection.ServerReflectionInfo(ask())
                    for s in r.list_services_response.service]
    base = f"http://127.0.0.1:{server.http_port}"
    metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    ready = urllib.request.urlopen(f"{base}/readyz", timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert "ghasi.sms.v1.SmsService" in services
    assert 'sms_submitted_total{outcome="accepted"} 1.0' in metrics
    for name in ("sms_dispatch_total", "sms_delivery_latency_seconds", "sms_outbox_depth",
                 "sms_receipts_total"):
        assert name in metrics
    assert ready.status == 200 and b"postgres: ok" in ready.read()
