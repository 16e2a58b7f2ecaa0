"""Commands for operators, not tenants: keys, the dead-letter queue, the SMSC simulator."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.message import Message

from smsgw.cli.common import (
    AuthorizedStub,
    Commands,
    client_options,
    client_target,
    failed,
    note,
    print_lines,
)
from smsgw.cli.server import tenant_create
from smsgw.proto import admin_pb2, admin_pb2_grpc
from smsgw.settings import Settings


def add_commands(commands: Commands) -> None:
    key = commands.add_parser("key", help="manage API keys")
    key_commands = key.add_subparsers(required=True, metavar="ACTION")
    create_key = key_commands.add_parser("create", help="issue another key for a tenant")
    create_key.add_argument("--tenant", required=True, dest="name")
    create_key.add_argument("--scope", action="append", choices=("send", "admin"), default=[],
                            help="what the key may do (repeatable; default: send)")
    create_key.set_defaults(run=tenant_create)

    dlq = commands.add_parser("dlq", help="the dead-letter queue (needs an admin-scoped key)")
    dlq_actions = dlq.add_subparsers(required=True, metavar="ACTION")
    list_dlq = dlq_actions.add_parser("list", help="dead letters, newest first, as JSON lines")
    replay = dlq_actions.add_parser("replay", help="send dead letters again (each at most once)")
    replay.add_argument("message_ids", nargs="*", help="default: every one the filter matches")
    for command in (list_dlq, replay):
        client_options(command)
        command.add_argument("--tenant-id", default="")
        command.add_argument("--provider", default="")
        command.add_argument("--error-code", default="")
        command.add_argument("--pending", action="store_true", help="only those not replayed")
        command.set_defaults(run=_dlq, action=(command is replay and "replay") or "list")

    smsc = commands.add_parser("smsc-sim", add_help=False,
                               help="run the SMSC simulator (SMPP 3.4 server); --help for options")
    smsc.add_argument("options", nargs=argparse.REMAINDER)
    smsc.set_defaults(run=_smsc_sim)


async def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    address, key = client_target(args, settings)
    where = admin_pb2.DeadLetterFilter(tenant_id=args.tenant_id, provider=args.provider,
                                       error_code=args.error_code, pending_only=args.pending)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = AuthorizedStub(admin_pb2_grpc.SmsAdminServiceStub(channel), key)
        try:
            if args.action == "replay":
                reply = await stub.ReplayDeadLetters(admin_pb2.ReplayDeadLettersRequest(
                    message_ids=args.message_ids, filter=where))
                printed = print_lines(reply.results)
            else:
                printed = 0
                async for item in _dead_letters(stub, where):  # page by page, as they come
                    printed += print_lines([item])
        except grpc.aio.AioRpcError as exc:
            return failed(exc)
    if not printed:  # on stderr, so that stdout stays empty, as a list of nothing is
        note("no dead letters to replay" if args.action == "replay" else "no dead letters")
    return 0


async def _dead_letters(stub: Any, where: admin_pb2.DeadLetterFilter) -> AsyncIterator[Message]:
    token = ""
    while True:
        page = await stub.ListDeadLetters(admin_pb2.ListDeadLettersRequest(
            filter=where, page_size=200, page_token=token))
        for item in page.dead_letters:
            yield item
        if not (token := page.next_page_token):
            return


async def _smsc_sim(args: argparse.Namespace, settings: Settings) -> int:
    """Runs the simulator in this process's place, so signals reach it directly.

    The simulator is not part of the production package: ``smsgw_simulators``
    is imported by the new process, never by this one.
    """
    del settings
    os.execv(sys.executable,  # noqa: S606 - our own module, no shell
             [sys.executable, "-m", "smsgw_simulators.smsc", *args.options])
