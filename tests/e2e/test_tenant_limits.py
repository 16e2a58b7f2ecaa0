"""Per-tenant rate limits and quotas, against real server processes over gRPC and REST.

Limits are set the way operators set them (the admin RPC, or the CLI over it)
on a running server; no test asserts on timing: a rate is chosen so slow that
the next permit is minutes away, or a stream is checked for what it got, not
how long it took.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2, status_pb2

from smsgw.proto import admin_pb2, admin_pb2_grpc
from smsgw.proto import sms_pb2 as pb
from smsgw_bench.drills.stores import PrivateRedis
from tests.conftest import client_for, new_tenant_key
from tests.e2e.support import details, reason, request

pytestmark = pytest.mark.e2e
SLOW = 0.001  # one message per ~17 minutes: after the burst, the next permit is far away


async def tenant(database_url: str) -> tuple[str, str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    return name, await new_tenant_key(database_url, name)


async def set_limits(address: str, admin_key: str, name: str, **limits: Any) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        await admin_pb2_grpc.SmsAdminServiceStub(channel).SetTenantLimits(
            admin_pb2.SetTenantLimitsRequest(
                limits=admin_pb2.TenantLimits(tenant=name, **limits),
                update_mask=field_mask_pb2.FieldMask(paths=list(limits))),
            metadata=(("authorization", f"Bearer {admin_key}"),), timeout=10)


def unpack(status: status_pb2.Status, kind: type) -> Any:
    for packed in status.details:
        found = kind()
        if packed.Unpack(found):
            return found
    raise AssertionError(f"no {kind.__name__} in the details")


def metric(http_port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.decode().splitlines()
               if line.startswith(name) and not line.startswith("#"))


async def smsgw(address: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMSGW_API_KEY": key, "SMSGW_GRPC_ADDRESS": address,
           "SMSGW_LOG_LEVEL": "WARNING"}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "smsgw", *args], env=env, capture_output=True,
        text=True, timeout=60, check=False)


async def test_a_unary_send_over_the_rate_is_resource_exhausted_with_when_to_retry(
        start_server, database_url):
    server = await start_server()
    admin = await new_tenant_key(database_url, scopes=("admin",))
    name, key = await tenant(database_url)
    await set_limits(server.address, admin, name, rate_per_second=SLOW, burst=2)
    async with client_for(server.address, key) as client:
        for _ in range(2):
            await client.stub.SendMessage(request(), metadata=client.auth)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.stub.SendMessage(request(), metadata=client.auth)
        usage = await client.stub.GetUsage(pb.GetUsageRequest(), metadata=client.auth)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = details(refused.value)
    assert reason(status) == "RATE_LIMITED"
    retry = unpack(status, error_details_pb2.RetryInfo).retry_delay.ToTimedelta()
    assert dt.timedelta(seconds=60) < retry <= dt.timedelta(seconds=1 / SLOW)
    violation = unpack(status, error_details_pb2.QuotaFailure).violations[0]
    assert violation.subject.startswith("tenant:") and violation.description == "rate_per_second"
    assert dict(refused.value.trailing_metadata())["retry-after"] == str(
        int(retry.total_seconds()) + 1)
    assert (usage.rate_per_second, usage.burst, usage.daily.used_segments) == (SLOW, 2, 2)


async def test_a_batch_over_the_burst_gets_per_item_results(start_server, database_url):
    server = await start_server()
    admin = await new_tenant_key(database_url, scopes=("admin",))
    name, key = await tenant(database_url)
    await set_limits(server.address, admin, name, rate_per_second=SLOW, burst=3)
    async with client_for(server.address, key) as client:
        reply = await client.stub.BatchSendMessages(pb.BatchSendMessagesRequest(
            requests=[request(to="bad"), *(request() for _ in range(5))]), metadata=client.auth)
    kinds = [r.WhichOneof("result") for r in reply.results]
    assert kinds == ["error", "message", "message", "message", "error", "error"]
    assert reply.results[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    for result in reply.results[4:]:
        assert result.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert reason(result.error) == "RATE_LIMITED"
        assert unpack(result.error, error_details_pb2.RetryInfo).retry_delay.seconds > 0


async def test_the_bulk_stream_is_slowed_to_the_rate_not_refused(start_server, database_url):
    server = await start_server()
    admin = await new_tenant_key(database_url, scopes=("admin",))
    name, key = await tenant(database_url)
    await set_limits(server.address, admin, name, rate_per_second=40, burst=5)
    before = metric(server.http_port, 'sms_tenant_limited_total{how="slowed",limit="rate"}')

    async def chunks() -> AsyncIterator[pb.SendMessagesRequest]:
        for _ in range(6):
            yield pb.SendMessagesRequest(items=[request() for _ in range(10)])

    async with client_for(server.address, key) as client:
        results = [r async for response in client.stub.SendMessages(chunks(),
                                                                    metadata=client.auth)
                   for r in response.results]
    assert [r.index for r in results] == list(range(60))
    assert all(r.HasField("message") for r in results)  # none refused
    assert metric(server.http_port,
                  'sms_tenant_limited_total{how="slowed",limit="rate"}') > before


async def test_limits_set_with_the_cli_apply_on_every_replica_without_a_restart(
        start_server, database_url):
    first, second = await start_server(), await start_server()
    admin = await new_tenant_key(database_url, scopes=("admin",))
    name, key = await tenant(database_url)
    done = await smsgw(first.address, admin, "tenant", "set-limits", name, "--rate", str(SLOW),
                       "--burst", "1", "--daily-quota", "500", "--quiet-hours", "21:00-08:00")
    assert done.returncode == 0, done.stderr
    shown = json.loads((await smsgw(second.address, admin, "tenant", "limits", name)).stdout)
    assert shown["rate_per_second"] == SLOW and shown["burst"] == 1
    assert shown["daily_segment_quota"] == "500"  # int64: a string in JSON
    assert shown["quiet_hours"] == {"start": "21:00", "end": "08:00"}
    async with client_for(second.address, key) as client:
        # The other replica picks the policy up at its next refresh (every 2 s).
        code = await _until_refused(client)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        done = await smsgw(first.address, admin, "tenant", "set-limits", name, "--rate", "0")
        assert done.returncode == 0, done.stderr
        await _until_accepted(client)
    refused = await smsgw(first.address, key, "tenant", "limits", name)  # not an admin key
    assert refused.returncode == 1 and "PERMISSION_DENIED" in refused.stderr


async def _until_refused(client: Any) -> grpc.StatusCode:
    for _ in range(300):
        try:
            await client.stub.SendMessage(request(), metadata=client.auth)
        except grpc.aio.AioRpcError as error:
            return error.code()
        await asyncio.sleep(0.1)
    raise AssertionError("the new limit never applied")


async def _until_accepted(client: Any) -> None:
    for _ in range(300):
        try:
            await client.stub.SendMessage(request(), metadata=client.auth)
            return
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await asyncio.sleep(0.1)
    raise AssertionError("the raised limit never applied")


async def test_quotas_refuse_with_the_reset_time_and_never_count_a_replay(
        start_server, database_url):
    server = await start_server()
    admin = await new_tenant_key(database_url, scopes=("admin",))
    name, key = await tenant(database_url)
    await set_limits(server.address, admin, name, daily_segment_quota=3)
    async with client_for(server.address, key) as client:
        sent = [await client.stub.SendMessage(request(), metadata=client.auth)
                for _ in range(3)]
        # An idempotent replay of an accepted message returns it, full quota or not.
        again = await client.stub.SendMessage(
            request(key=sent[0].idempotency_key), metadata=client.auth)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.stub.SendMessage(request(), metadata=client.auth)
        batch = await client.stub.BatchSendMessages(pb.BatchSendMessagesRequest(
            requests=[request(key=sent[1].idempotency_key), request()]), metadata=client.auth)
        usage = await client.stub.GetUsage(pb.GetUsageRequest(), metadata=client.auth)
    assert again.id == sent[0].id
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    status = details(refused.value)
    info = unpack(status, error_details_pb2.ErrorInfo)
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    assert info.reason == "QUOTA_EXCEEDED"
    assert info.metadata["reset_time"] == f"{tomorrow.isoformat()}T00:00:00Z"
    assert (info.metadata["period"], info.metadata["limit_segments"]) == ("daily", "3")
    retry = unpack(status, error_details_pb2.RetryInfo).retry_delay.ToTimedelta()
    assert dt.timedelta(0) < retry <= dt.timedelta(days=1)
    assert unpack(status, error_details_pb2.QuotaFailure).violations[0].description == \
        "daily_segment_quota"
    assert batch.results[0].message.id == sent[1].id  # the replay, not an error
    assert reason(batch.results[1].error) == "QUOTA_EXCEEDED"
    assert (usage.daily.used_segments, usage.daily.limit_segments) == (3, 3)
    assert usage.daily.reset_time.ToDatetime(dt.UTC).date() == tomorrow
    assert (usage.monthly.used_segments, usage.monthly.limit_segments) == (3, 0)


async def test_a_monthly_quota_resets_on_the_first_of_next_month(start_server, database_url):
    server = await start_server()
    admin = await new_tenant_key(database_url, scopes=("admin",))
    name, key = await tenant(database_url)
    await set_limits(server.address, admin, name, monthly_segment_quota=2)
    async with client_for(server.address, key) as client:
        await client.stub.SendMessage(request(body="x" * 200), metadata=client.auth)  # 2 parts
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.stub.SendMessage(request(), metadata=client.auth)
    info = unpack(details(refused.value), error_details_pb2.ErrorInfo)
    reset = dt.datetime.fromisoformat(info.metadata["reset_time"])
    assert (info.reason, info.metadata["period"]) == ("QUOTA_EXCEEDED", "monthly")
    assert (reset.day, reset.hour) == (1, 0) and reset > dt.datetime.now(dt.UTC)


async def test_rest_answers_429_with_retry_after_and_the_status_as_json(
        start_server, database_url):
    server = await start_server(rest_enabled="true")
    admin = await new_tenant_key(database_url, scopes=("admin",))
    name, key = await tenant(database_url)
    await set_limits(server.address, admin, name, rate_per_second=SLOW, burst=1)
    body = {"to": "+16502530000", "body": "hi"}
    first, sent = await asyncio.to_thread(_post, f"{server.rest_url}/v1/messages", key,
                                          {**body, "idempotency_key": "one"})
    code, headers, answer = await asyncio.to_thread(
        _post_raw, f"{server.rest_url}/v1/messages", key, {**body, "idempotency_key": "two"})
    assert first == 200, sent
    assert code == 429
    assert 60 < int(headers["retry-after"]) <= 1 / SLOW + 1
    assert answer["code"] == 8
    kinds = {d["@type"].rsplit(".", 1)[1]: d for d in answer["details"]}
    assert kinds["ErrorInfo"]["reason"] == "RATE_LIMITED"
    assert {"RetryInfo", "QuotaFailure"} <= set(kinds)
    usage = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{server.rest_url}/v1/usage", headers={"authorization": f"Bearer {key}"}),
        timeout=30).read())
    assert usage["daily"]["used_segments"] == "1" and usage["burst"] == 1


def _post(url: str, key: str, body: object) -> tuple[int, dict]:
    code, _, answer = _post_raw(url, key, body)
    return code, answer


def _post_raw(url: str, key: str, body: object) -> tuple[int, dict[str, str], dict]:
    call = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "content-type": "application/json", "authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(call, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        headers = {k.lower(): v for k, v in error.headers.items()}
        return error.code, headers, json.loads(error.read())


async def test_with_redis_gone_rate_limits_fail_open_and_say_so(start_server, database_url):
    redis = PrivateRedis()
    redis.start()
    try:
        server = await start_server(redis_url=redis.url)
        admin = await new_tenant_key(database_url, scopes=("admin",))
        name, key = await tenant(database_url)
        await set_limits(server.address, admin, name, rate_per_second=SLOW, burst=1,
                         daily_segment_quota=4)
        async with client_for(server.address, key) as client:
            await client.stub.SendMessage(request(), metadata=client.auth)
            with pytest.raises(grpc.aio.AioRpcError) as limited:  # enforced while Redis is up
                await client.stub.SendMessage(request(), metadata=client.auth)
            assert limited.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            redis.kill()
            accepted = [await client.stub.SendMessage(request(), metadata=client.auth)
                        for _ in range(3)]
            # Quotas are Postgres's: still exact with Redis gone.
            with pytest.raises(grpc.aio.AioRpcError) as over_quota:
                await client.stub.SendMessage(request(), metadata=client.auth)
        assert len({m.id for m in accepted}) == 3
        assert reason(details(over_quota.value)) == "QUOTA_EXCEEDED"
        assert metric(server.http_port, "sms_rate_limit_bypassed_total") >= 3
    finally:
        redis.destroy()
