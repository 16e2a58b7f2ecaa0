"""Signed status webhooks, delivered by a real server to a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
from standardwebhooks.webhooks import Webhook

from smsgw.proto import sms_pb2 as pb
from tests.conftest import client_for, new_tenant_key
from tests.e2e.support import details, request, violated_fields

pytestmark = pytest.mark.e2e
FAST_RETRIES = {"webhook_poll_seconds": 0.1, "webhook_retry_base_seconds": 0.05,
                "webhook_retry_cap_seconds": 0.2}


class Receiver:
    """Records every POST; answers with the queued status codes, then 200."""

    def __init__(self, answers: list[int] | None = None, delay: float = 0.0) -> None:
        self.answers = list(answers or [])
        self.delay = delay
        self.received: list[tuple[dict[str, str], str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = receiver.answers.pop(0) if receiver.answers else 200
                time.sleep(receiver.delay)
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verified(self, secret: str) -> list[dict]:
        """Every payload, after checking its signature as a receiver would."""
        return [Webhook(secret).verify(body, headers) for headers, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(answers: list[int] | None = None, delay: float = 0.0) -> Receiver:
        made.append(Receiver(answers, delay))
        return made[-1]

    yield make
    for r in made:
        r.close()


async def wait_for(condition, seconds: float = 30) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.05)


async def test_every_status_event_is_posted_signed_and_in_order(
        start_server, database_url, receiver):
    server = await start_server(**FAST_RETRIES)
    hook = receiver()
    async with client_for(server.address, await new_tenant_key(database_url)) as c:
        endpoint = await c.stub.CreateWebhookEndpoint(
            pb.CreateWebhookEndpointRequest(url=hook.url), metadata=c.auth)
        message = await c.stub.SendMessage(request(client_reference="r-1"), metadata=c.auth)
        await wait_for(lambda: len(hook.received) >= 4)
        listed = await c.stub.ListWebhookEndpoints(pb.ListWebhookEndpointsRequest(),
                                                   metadata=c.auth)
        deliveries = await c.stub.ListWebhookDeliveries(
            pb.ListWebhookDeliveriesRequest(endpoint_id=endpoint.id), metadata=c.auth)
    payloads = hook.verified(endpoint.secret)
    assert endpoint.secret.startswith("whsec_") and listed.endpoints[0].secret == ""
    assert [p["data"]["status"] for p in payloads] == [
        "MESSAGE_STATUS_QUEUED", "MESSAGE_STATUS_SENDING", "MESSAGE_STATUS_SENT",
        "MESSAGE_STATUS_DELIVERED"]
    assert {p["data"]["message_id"] for p in payloads} == {message.id}
    assert payloads[0]["data"]["client_reference"] == "r-1"
    assert [h["webhook-id"] for h, _ in hook.received] == [p["data"]["cursor"] for p in payloads]
    assert {d.http_status for d in deliveries.deliveries} == {200}
    assert len(deliveries.deliveries) == 4
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 32).verify(hook.received[0][1], hook.received[0][0])


async def test_failures_are_retried_and_nothing_is_delivered_twice(
        start_server, database_url, receiver):
    server = await start_server(**FAST_RETRIES)
    hook = receiver(answers=[500, 503, 429])
    async with client_for(server.address, await new_tenant_key(database_url)) as c:
        endpoint = await c.stub.CreateWebhookEndpoint(pb.CreateWebhookEndpointRequest(
            url=hook.url, statuses=[pb.MESSAGE_STATUS_DELIVERED]), metadata=c.auth)
        ids = [(await c.stub.SendMessage(request(), metadata=c.auth)).id for _ in range(3)]
        await wait_for(lambda: len(hook.received) >= 6)
        await asyncio.sleep(0.5)  # would anything arrive twice?
        deliveries = await c.stub.ListWebhookDeliveries(
            pb.ListWebhookDeliveriesRequest(endpoint_id=endpoint.id), metadata=c.auth)
    payloads = hook.verified(endpoint.secret)
    delivered = [p["data"]["message_id"] for p in payloads[3:]]
    assert sorted(delivered) == sorted(ids) and len(hook.received) == 6
    assert {p["data"]["status"] for p in payloads} == {"MESSAGE_STATUS_DELIVERED"}
    codes = [d.http_status for d in reversed(deliveries.deliveries)]
    assert codes == [500, 503, 429, 200, 200, 200]
    assert [d.attempt for d in reversed(deliveries.deliveries)][:4] == [1, 2, 3, 4]


async def test_gone_disables_the_endpoint(start_server, database_url, receiver):
    server = await start_server(**FAST_RETRIES)
    hook = receiver(answers=[410])
    async with client_for(server.address, await new_tenant_key(database_url)) as c:
        await c.stub.CreateWebhookEndpoint(pb.CreateWebhookEndpointRequest(url=hook.url),
                                           metadata=c.auth)
        await c.stub.SendMessage(request(), metadata=c.auth)
        await wait_for(lambda: len(hook.received) >= 1)
        await asyncio.sleep(1.0)
        [endpoint] = (await c.stub.ListWebhookEndpoints(pb.ListWebhookEndpointsRequest(),
                                                        metadata=c.auth)).endpoints
    assert len(hook.received) == 1
    assert not endpoint.enabled and "410" in endpoint.disabled_reason


async def test_endpoints_are_validated_scoped_and_deletable(start_server, database_url):
    server = await start_server(relay_enabled=False)
    async with client_for(server.address, await new_tenant_key(database_url)) as a, \
            client_for(server.address, await new_tenant_key(database_url)) as b:
        for url in ("ftp://example.com/x", "http://example.com/hooks", "not a url", ""):
            with pytest.raises(grpc.aio.AioRpcError) as bad:
                await a.stub.CreateWebhookEndpoint(pb.CreateWebhookEndpointRequest(url=url),
                                                   metadata=a.auth)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert violated_fields(details(bad.value)) == ["url"]
        created = await a.stub.CreateWebhookEndpoint(
            pb.CreateWebhookEndpointRequest(url="https://hooks.example.com/sms"), metadata=a.auth)
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await b.stub.DeleteWebhookEndpoint(pb.DeleteWebhookEndpointRequest(id=created.id),
                                               metadata=b.auth)
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
        await a.stub.DeleteWebhookEndpoint(pb.DeleteWebhookEndpointRequest(id=created.id),
                                           metadata=a.auth)
        left = await a.stub.ListWebhookEndpoints(pb.ListWebhookEndpointsRequest(),
                                                 metadata=a.auth)
    assert list(left.endpoints) == []




async def test_a_slow_endpoint_holds_up_neither_sending_nor_other_endpoints(
        start_server, database_url, receiver):
    server = await start_server(**FAST_RETRIES, webhook_timeout_seconds=30)
    slow, fast = receiver(delay=3.0), receiver()
    async with client_for(server.address, await new_tenant_key(database_url)) as c:
        for hook in (slow, fast):
            await c.stub.CreateWebhookEndpoint(pb.CreateWebhookEndpointRequest(url=hook.url),
                                               metadata=c.auth)
        message = await c.stub.SendMessage(request(), metadata=c.auth)
        watch = c.stub.WatchMessageStatus(
            pb.WatchMessageStatusRequest(message_ids=[message.id]), metadata=c.auth, timeout=30)
        statuses = [i.event.status async for i in watch if i.HasField("event")]
        await wait_for(lambda: len(fast.received) >= 4, seconds=10)
    assert statuses[-1] == pb.MESSAGE_STATUS_DELIVERED  # sending went on regardless
    assert len(slow.received) <= 2  # still on its first events, alone


async def test_a_restart_neither_loses_nor_repeats_deliveries(
        start_server, database_url, receiver):
    hook = receiver()
    first = await start_server(**FAST_RETRIES)
    key = await new_tenant_key(database_url)
    async with client_for(first.address, key) as c:
        endpoint = await c.stub.CreateWebhookEndpoint(
            pb.CreateWebhookEndpointRequest(url=hook.url), metadata=c.auth)
        for _ in range(5):
            await c.stub.SendMessage(request(), metadata=c.auth)
        await wait_for(lambda: len(hook.received) >= 8)
    await asyncio.to_thread(first.stop)
    second = await start_server(**FAST_RETRIES)
    async with client_for(second.address, key) as c:
        for _ in range(2):
            await c.stub.SendMessage(request(), metadata=c.auth)
        await wait_for(lambda: len(hook.received) >= 28)
        await asyncio.sleep(0.5)
    ids = [p["data"]["cursor"] for p in hook.verified(endpoint.secret)]
    assert len(ids) == len(set(ids)) == 28  # 7 messages x 4 statuses, each once


async def test_the_cli_manages_endpoints(start_server, database_url, tmp_path):
    import os
    import subprocess
    import sys

    server = await start_server(relay_enabled=False)
    env = {**os.environ, "SMSGW_API_KEY": await new_tenant_key(database_url),
           "SMSGW_GRPC_ADDRESS": server.address, "SMSGW_LOG_LEVEL": "WARNING"}

    def cli(*args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "smsgw", "webhook", *args], env=env,
                              capture_output=True, text=True, timeout=60, check=True,
                              cwd=tmp_path)
        return json.loads(done.stdout)

    created = await asyncio.to_thread(cli, "create", "https://hooks.example.com/a",
                                      "--status", "delivered")
    listed = await asyncio.to_thread(cli, "list")
    assert created["secret"].startswith("whsec_")
    assert created["statuses"] == ["MESSAGE_STATUS_DELIVERED"]
    assert [e["id"] for e in listed["endpoints"]] == [created["id"]]
