"""A real server process: bulk with bad items, auth, tenant isolation, bad input, operations."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import urllib.request
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from smsgw.proto import admin_pb2 as admin
from smsgw.proto import admin_pb2_grpc
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


async def test_a_bulk_stream_chunk_over_1000_items_gets_an_error_per_item_and_goes_on(
        start_server, database_url):
    # The proto: at most 1000 items per chunk; every item gets exactly one result and a bad
    # item never ends the stream. So each item of the oversized chunk is refused, none stored.
    server = await start_server(relay_enabled=False)

    async def chunks():
        yield pb.SendMessagesRequest(items=[request(client_reference=f"a{i}") for i in range(2)])
        yield pb.SendMessagesRequest(items=[request(client_reference=f"b{i}")
                                            for i in range(1001)])
        yield pb.SendMessagesRequest(items=[request(client_reference="c0")])

    async with client_for(server.address, await new_tenant_key(database_url)) as c:
        responses = [r async for r in c.stub.SendMessages(chunks(), metadata=c.auth)]
        stored = await c.stub.ListMessages(pb.ListMessagesRequest(page_size=1000),
                                           metadata=c.auth)
    assert [len(r.results) for r in responses] == [2, 1001, 1]
    results = [r for response in responses for r in response.results]
    assert [r.index for r in results] == list(range(1004))
    refused = results[2:1003]
    assert [r.client_reference for r in refused] == [f"b{i}" for i in range(1001)]
    assert {(r.error.code, tuple(violated_fields(r.error)), reason(r.error))
            for r in refused} == {(grpc.StatusCode.INVALID_ARGUMENT.value[0], ("items",),
                                   "INVALID_ARGUMENT")}
    assert all(r.HasField("message") for r in results[:2] + results[1003:])
    assert sorted(m.client_reference for m in stored.messages) == ["a0", "a1", "c0"]


def _token(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _untoken(token: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(token))


# Deeper than any JSON decoder recurses.
NESTED_TOKEN = base64.urlsafe_b64encode(b"[" * 100_000).decode()
SECONDS_MAX, SECONDS_MIN = 253402300799, -62135596800  # 9999-12-31T23:59:59Z, 0001-01-01
ENDPOINT = str(uuid.uuid4())


def _stamp(seconds: int = 0, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=seconds, nanos=nanos)


BAD_FIELDS: list[tuple[str, Any, str]] = [
    ("ListMessages", pb.ListMessagesRequest(create_time_start=_stamp(SECONDS_MAX + 1)),
     "create_time_start"),
    ("ListMessages", pb.ListMessagesRequest(create_time_end=_stamp(SECONDS_MIN - 1)),
     "create_time_end"),
    ("ListMessages", pb.ListMessagesRequest(create_time_start=_stamp(2**63 - 1)),
     "create_time_start"),
    ("ListMessages", pb.ListMessagesRequest(create_time_end=_stamp(-2**63)), "create_time_end"),
    ("ListMessages", pb.ListMessagesRequest(create_time_start=_stamp(0, 10**9)),
     "create_time_start"),
    ("ListMessages", pb.ListMessagesRequest(create_time_end=_stamp(0, -1)), "create_time_end"),
    ("ListMessages", pb.ListMessagesRequest(create_time_end=_stamp(SECONDS_MAX, 2**31 - 1)),
     "create_time_end"),
    ("ListMessages", pb.ListMessagesRequest(statuses=[0]), "statuses[0]"),
    ("ListMessages", pb.ListMessagesRequest(statuses=[1, -1]), "statuses[1]"),
    ("ListMessages", pb.ListMessagesRequest(statuses=[2**31 - 1]), "statuses[0]"),
    ("ListMessages", pb.ListMessagesRequest(page_size=-2**31), "page_size"),
    ("ListMessages", pb.ListMessagesRequest(page_token=NESTED_TOKEN), "page_token"),
    ("ListMessages", pb.ListMessagesRequest(page_token=_token([1, 2])), "page_token"),
    ("ListMessages", pb.ListMessagesRequest(to="+1650\x00"), "to"),
    ("SendMessage", request(traffic_class=99), "traffic_class"),
    ("SendMessage", request(traffic_class=-1), "traffic_class"),
    ("BatchSendMessages", pb.BatchSendMessagesRequest(), "requests"),
    ("GetMessage", pb.GetMessageRequest(id="0x" + "1" * 30), "id"),
    ("GetMessage", pb.GetMessageRequest(id="\u0661" * 32), "id"),
    ("CancelMessage", pb.CancelMessageRequest(id=" " + "1" * 31), "id"),
    ("CreateWebhookEndpoint", pb.CreateWebhookEndpointRequest(url="https://example.com/\x00"),
     "url"),
    ("CreateWebhookEndpoint", pb.CreateWebhookEndpointRequest(url="https://example.com:x/"),
     "url"),
    ("CreateWebhookEndpoint", pb.CreateWebhookEndpointRequest(url="https://example.com/",
                                                              statuses=[99]), "statuses[0]"),
    ("CreateWebhookEndpoint", pb.CreateWebhookEndpointRequest(url="https://example.com/",
                                                              statuses=[1, 0]), "statuses[1]"),
    ("DeleteWebhookEndpoint", pb.DeleteWebhookEndpointRequest(id="nope"), "id"),
    ("ListWebhookDeliveries", pb.ListWebhookDeliveriesRequest(endpoint_id=""), "endpoint_id"),
    ("ListWebhookDeliveries", pb.ListWebhookDeliveriesRequest(endpoint_id=ENDPOINT,
                                                              page_size=-1), "page_size"),
    ("WatchMessageStatus", pb.WatchMessageStatusRequest(
        message_ids=[str(uuid.uuid4()) for _ in range(1001)]), "message_ids"),
    ("WatchMessageStatus", pb.WatchMessageStatusRequest(after_cursor="c1.1.1 "), "after_cursor"),
]


async def _answer(call: Any) -> tuple[grpc.StatusCode, list[str]]:
    """The status a call ended with and the fields its BadRequest names."""
    try:
        if hasattr(call, "__aiter__"):
            _ = [x async for x in call]
        else:
            await call
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
            return error.code(), [error.details() or ""]
        return error.code(), violated_fields(details(error))
    return grpc.StatusCode.OK, []


async def test_every_field_of_every_rpc_refuses_bad_values_by_name_never_internal(
        start_server, database_url):
    server = await start_server(relay_enabled=False)
    async with client_for(server.address, await new_tenant_key(database_url)) as c:
        for _ in range(2):
            await c.stub.SendMessage(request(), metadata=c.auth)
        page = await c.stub.ListMessages(pb.ListMessagesRequest(page_size=1), metadata=c.auth)
        issued = _untoken(page.next_page_token)  # a real token, tampered with as a client could
        cases = [*BAD_FIELDS, *(
            ("ListMessages", pb.ListMessagesRequest(page_size=1, page_token=_token(tampered)),
             "page_token")
            for tampered in ({**issued, "i": 5}, {**issued, "i": [1]}, {**issued, "t": 5},
                             {**issued, "t": "2024-01-01T00:00:00"}, [issued]))]
        answers = [(rpc, field, await _answer(getattr(c.stub, rpc)(payload, metadata=c.auth)))
                   for rpc, payload, field in cases]
        huge_page = await c.stub.ListMessages(pb.ListMessagesRequest(page_size=2**31 - 1),
                                              metadata=c.auth)
        stored = await c.stub.ListMessages(pb.ListMessagesRequest(), metadata=c.auth)
    wrong = [(rpc, field, answer) for rpc, field, answer in answers
             if answer != (grpc.StatusCode.INVALID_ARGUMENT, [field])]
    assert wrong == []
    assert len(huge_page.messages) == 2  # a huge page size is capped, not refused
    assert len(stored.messages) == 2


ADMIN_BAD_FIELDS: list[tuple[str, Any, str]] = [
    ("ListDeadLetters", admin.ListDeadLettersRequest(
        filter=admin.DeadLetterFilter(tenant_id="x")), "filter.tenant_id"),
    ("ListDeadLetters", admin.ListDeadLettersRequest(
        filter=admin.DeadLetterFilter(tenant_id="0x" + "1" * 30)), "filter.tenant_id"),
    ("ListDeadLetters", admin.ListDeadLettersRequest(
        filter=admin.DeadLetterFilter(provider="smsc\x00")), "filter.provider"),
    ("ListDeadLetters", admin.ListDeadLettersRequest(
        filter=admin.DeadLetterFilter(error_code="\x00")), "filter.error_code"),
    ("ListDeadLetters", admin.ListDeadLettersRequest(page_size=-1), "page_size"),
    ("ListDeadLetters", admin.ListDeadLettersRequest(page_size=-2**31), "page_size"),
    ("ListDeadLetters", admin.ListDeadLettersRequest(page_token="garbage"), "page_token"),
    ("ListDeadLetters", admin.ListDeadLettersRequest(page_token=NESTED_TOKEN), "page_token"),
    ("ListDeadLetters", admin.ListDeadLettersRequest(
        page_token=_token(["2024-01-01T00:00:00+00:00", 5])), "page_token"),
    ("ListDeadLetters", admin.ListDeadLettersRequest(
        page_token=_token(["2024-01-01T00:00:00", str(uuid.uuid4())])), "page_token"),
    ("ListDeadLetters", admin.ListDeadLettersRequest(
        page_token=_token({"a": 1, "b": 2})), "page_token"),
    ("ReplayDeadLetters", admin.ReplayDeadLettersRequest(message_ids=["x"]), "message_ids[0]"),
    ("ReplayDeadLetters", admin.ReplayDeadLettersRequest(
        message_ids=[str(uuid.uuid4()), "\u0661" * 32]), "message_ids[1]"),
    ("ReplayDeadLetters", admin.ReplayDeadLettersRequest(
        message_ids=[str(uuid.uuid4()) for _ in range(1001)]), "message_ids"),
    ("ReplayDeadLetters", admin.ReplayDeadLettersRequest(
        filter=admin.DeadLetterFilter(tenant_id="x")), "filter.tenant_id"),
    ("ReplayDeadLetters", admin.ReplayDeadLettersRequest(
        filter=admin.DeadLetterFilter(provider="\x00")), "filter.provider"),
]


async def test_admin_rpcs_refuse_bad_values_by_name_never_internal(start_server, database_url):
    server = await start_server(relay_enabled=False)
    admin_key = await new_tenant_key(database_url, "ops", scopes=("admin",))
    auth = (("authorization", f"Bearer {admin_key}"),)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = admin_pb2_grpc.SmsAdminServiceStub(channel)
        answers = [(rpc, field, await _answer(getattr(stub, rpc)(payload, metadata=auth)))
                   for rpc, payload, field in ADMIN_BAD_FIELDS]
        huge_page = await stub.ListDeadLetters(admin.ListDeadLettersRequest(
            page_size=2**31 - 1), metadata=auth)
        raw = channel.unary_unary("/ghasi.sms.v1.SmsAdminService/ListDeadLetters")
        undecodable = await _answer(raw(b"\x0a\x03\x0a\x01\xff", metadata=auth))
    wrong = [(rpc, field, answer) for rpc, field, answer in answers
             if answer != (grpc.StatusCode.INVALID_ARGUMENT, [field])]
    assert wrong == []
    assert list(huge_page.dead_letters) == []
    assert undecodable == (grpc.StatusCode.INVALID_ARGUMENT, ["request"])
