"""A tenant's commands against a running gateway, over gRPC: send, watch, webhook."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import grpc

from smsgw.cli.common import (
    AuthorizedStub,
    Commands,
    client_options,
    client_target,
    failed,
    note,
    to_json,
)
from smsgw.proto import sms_pb2, sms_pb2_grpc
from smsgw.settings import Settings


def add_commands(commands: Commands) -> None:
    send = commands.add_parser("send", help="send one message")
    client_options(send)
    send.add_argument("--to", required=True)
    send.add_argument("--body", required=True)
    send.add_argument("--sender", default="")
    send.add_argument("--idempotency-key", default=None, help="default: a new random key")
    send.set_defaults(run=_send)

    watch = commands.add_parser("watch", help="stream status events as JSON lines")
    client_options(watch)
    watch.add_argument("message_ids", nargs="*", help="default: the whole tenant")
    watch.add_argument("--after", default="", help="resume after this cursor")
    watch.set_defaults(run=_watch)

    webhook = commands.add_parser("webhook", help="manage signed status webhooks")
    actions = webhook.add_subparsers(required=True, metavar="ACTION")
    create_hook = actions.add_parser("create", help="register an endpoint (secret shown once)")
    create_hook.add_argument("url")
    create_hook.add_argument("--status", action="append", default=[], metavar="STATUS",
                             help="deliver only these statuses (e.g. DELIVERED); repeatable")
    list_hooks = actions.add_parser("list", help="list endpoints")
    delete_hook = actions.add_parser("delete", help="remove an endpoint")
    deliveries = actions.add_parser("deliveries", help="recent delivery attempts")
    for name, command in (("create", create_hook), ("list", list_hooks),
                          ("delete", delete_hook), ("deliveries", deliveries)):
        if name in {"delete", "deliveries"}:
            command.add_argument("endpoint_id")
        client_options(command)
        command.set_defaults(run=_webhook, action=name)


async def _send(args: argparse.Namespace, settings: Settings) -> int:
    address, key = client_target(args, settings)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = sms_pb2_grpc.SmsServiceStub(channel)
        try:
            message = await stub.SendMessage(sms_pb2.SendMessageRequest(
                to=args.to, body=args.body, sender=args.sender,
                idempotency_key=args.idempotency_key or str(uuid.uuid4())),
                metadata=(("authorization", f"Bearer {key}"),), timeout=30)
        except grpc.aio.AioRpcError as exc:
            return failed(exc)
    print(to_json(message))
    return 0


async def _watch(args: argparse.Namespace, settings: Settings) -> int:
    address, key = client_target(args, settings)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = sms_pb2_grpc.SmsServiceStub(channel)
        call = stub.WatchMessageStatus(
            sms_pb2.WatchMessageStatusRequest(message_ids=args.message_ids,
                                              after_cursor=args.after),
            metadata=(("authorization", f"Bearer {key}"),))
        try:
            async for item in call:
                print(to_json(item), flush=True)
        except grpc.aio.AioRpcError as exc:
            return failed(exc)
        finally:
            call.cancel()  # also when printing failed: the reader went away
    return 0


async def _webhook(args: argparse.Namespace, settings: Settings) -> int:
    address, key = client_target(args, settings)
    calls = {
        "create": lambda s: s.CreateWebhookEndpoint(sms_pb2.CreateWebhookEndpointRequest(
            url=args.url, statuses=[_status(name) for name in args.status])),
        "list": lambda s: s.ListWebhookEndpoints(sms_pb2.ListWebhookEndpointsRequest()),
        "delete": lambda s: s.DeleteWebhookEndpoint(
            sms_pb2.DeleteWebhookEndpointRequest(id=args.endpoint_id)),
        "deliveries": lambda s: s.ListWebhookDeliveries(
            sms_pb2.ListWebhookDeliveriesRequest(endpoint_id=args.endpoint_id)),
    }
    async with grpc.aio.insecure_channel(address) as channel:
        stub = AuthorizedStub(sms_pb2_grpc.SmsServiceStub(channel), key)
        try:
            reply = await calls[args.action](stub)
        except grpc.aio.AioRpcError as exc:
            return failed(exc)
    print(to_json(reply))
    if args.action == "create":
        note("Keep the secret: it is shown only once.")
    elif args.action == "list" and not reply.endpoints:
        note("no webhook endpoints")
    elif args.action == "deliveries" and not reply.deliveries:
        note("no deliveries to this endpoint yet")
    return 0


def _status(name: str) -> Any:
    full = name.upper() if name.upper().startswith("MESSAGE_STATUS_") else \
        f"MESSAGE_STATUS_{name.upper()}"
    try:
        return sms_pb2.MessageStatus.Value(full)
    except ValueError:
        raise SystemExit(f"unknown status {name!r}") from None
