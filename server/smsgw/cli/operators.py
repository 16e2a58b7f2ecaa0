"""Commands for operators, not tenants: keys, tenant limits, the dead-letter queue, the SMSC
simulator.

Tenant limits go through the admin API (an admin-scoped key), not the database
as ``tenant create`` does: ``tenant create`` bootstraps the first key, before
any key exists; limits change on a running system, so they take the path with
its validation, its authorization and its audit in one place, and the replica
that takes the call applies them at once (the others within their policy refresh).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import field_mask_pb2
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


def add_commands(commands: Commands, tenant_actions: Commands) -> None:
    limits = tenant_actions.add_parser(
        "limits", help="a tenant's rate limit, quotas, weight and quiet hours (admin key)")
    set_limits = tenant_actions.add_parser(
        "set-limits", help="change a tenant's limits at run time; only the options given change "
                           "(0 means no limit; admin key)")
    for command in (limits, set_limits):
        command.add_argument("name", help="the tenant's name or id")
        client_options(command)
    set_limits.add_argument("--rate", type=float, help="messages per second, across replicas")
    set_limits.add_argument("--burst", type=int, help="messages at once above the rate")
    set_limits.add_argument("--daily-quota", type=int, help="segments per UTC day")
    set_limits.add_argument("--monthly-quota", type=int, help="segments per calendar month")
    set_limits.add_argument("--weight", type=int, help="share within a priority lane (1-1000)")
    set_limits.add_argument("--quiet-hours", metavar="HH:MM-HH:MM",
                            help="no marketing in this window of the recipient's local time; "
                                 "'none' to clear")
    limits.set_defaults(run=_limits)
    set_limits.set_defaults(run=_set_limits)

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


_OPTIONS = {"rate": "rate_per_second", "burst": "burst", "daily_quota": "daily_segment_quota",
            "monthly_quota": "monthly_segment_quota", "weight": "weight",
            "quiet_hours": "quiet_hours"}
_WINDOW = re.compile(r"^\s*(\S+)\s*-\s*(\S+)\s*$")


async def _limits(args: argparse.Namespace, settings: Settings) -> int:
    return await _admin(args, settings, admin_pb2.GetTenantLimitsRequest(tenant=args.name))


async def _set_limits(args: argparse.Namespace, settings: Settings) -> int:
    given = {option: getattr(args, option) for option in _OPTIONS
             if getattr(args, option) is not None}
    if not given:
        raise SystemExit("nothing to change: give at least one of --rate, --burst, "
                         "--daily-quota, --monthly-quota, --weight, --quiet-hours")
    limits = admin_pb2.TenantLimits(tenant=args.name)
    for option, value in given.items():
        if option == "quiet_hours":
            limits.quiet_hours.CopyFrom(_quiet_hours(value))
        else:
            setattr(limits, _OPTIONS[option], value)
    mask = field_mask_pb2.FieldMask(paths=[_OPTIONS[option] for option in given])
    return await _admin(args, settings,
                        admin_pb2.SetTenantLimitsRequest(tenant=args.name, limits=limits,
                                                         update_mask=mask))


def _quiet_hours(text: str) -> admin_pb2.QuietHours:
    if text.strip().lower() in ("", "none", "off"):
        return admin_pb2.QuietHours()
    window = _WINDOW.match(text)
    if window is None:
        raise SystemExit(f"--quiet-hours: expected HH:MM-HH:MM (or 'none'), got {text!r}")
    return admin_pb2.QuietHours(start=window[1], end=window[2])


async def _admin(args: argparse.Namespace, settings: Settings, request: Message) -> int:
    """One admin call; prints its answer as one JSON line."""
    address, key = client_target(args, settings)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = AuthorizedStub(admin_pb2_grpc.SmsAdminServiceStub(channel), key)
        method = (stub.SetTenantLimits if isinstance(request, admin_pb2.SetTenantLimitsRequest)
                  else stub.GetTenantLimits)
        try:
            print_lines([await method(request)])
        except grpc.aio.AioRpcError as exc:
            return failed(exc)
    return 0


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
