"""The ``smsgw`` command: serve, migrate, tenant create, send, watch, bench."""

from __future__ import annotations

import os

# gRPC's fork handlers log "Other threads are currently calling into gRPC, skipping
# fork() handlers" whenever this process forks while gRPC runs (pg_ctl run as another
# user is forked, not vforked). Every child here execs at once and needs no gRPC state:
# the handlers are turned off. gRPC reads this once, when it is first imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from smsgw import logs
from smsgw.adapters.embedded import start_embedded
from smsgw.adapters.postgres.database import Database
from smsgw.adapters.postgres.tenants import TenantDirectory
from smsgw.api import rest_proxy
from smsgw.app import Gateway, apply_migrations
from smsgw.proto import admin_pb2, admin_pb2_grpc, sms_pb2, sms_pb2_grpc
from smsgw.settings import Settings

LOCAL_TENANT = "local"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.load()
    logs.configure(settings.log_level, settings.log_json)
    try:
        result: int = _run(args.run(args, settings))
        sys.stdout.flush()  # a reader that went away shows here, not in a flush at exit
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:  # Ctrl-C of a client command (watch, bench): nothing to add
        return 128 + signal.SIGINT
    return result


def _reader_gone() -> int:
    """``smsgw watch | head -1``: stop quietly, as Python's documentation advises.

    stdout now points at /dev/null, so the interpreter's own flush at exit
    cannot fail a second time.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


def _run(main: Coroutine[Any, Any, int]) -> int:
    """On uvloop where it is installed: gRPC and asyncpg both run faster on it."""
    try:
        import uvloop  # noqa: PLC0415 - optional
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsgw", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND", parser_class=_Parser)

    serve = commands.add_parser("serve", help="run the gateway (gRPC, relay, metrics)")
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(run=_migrate)

    rest = commands.add_parser(
        "rest-config", help="write the Envoy config and descriptor set, for a REST sidecar")
    rest.add_argument("directory", type=Path)
    rest.add_argument("--grpc-port", type=int, default=50051)
    rest.set_defaults(run=_rest_config)

    tenant = commands.add_parser("tenant", help="manage tenants")
    tenant_commands = tenant.add_subparsers(required=True, metavar="ACTION")
    create = tenant_commands.add_parser("create", help="create a tenant and print a new API key")
    create.add_argument("name")
    create.add_argument("--scope", action="append", choices=("send", "admin"), default=[],
                        help="what the key may do (repeatable; default: send)")
    create.set_defaults(run=_tenant_create)

    _operator_commands(commands)

    send = commands.add_parser("send", help="send one message")
    _client_options(send)
    send.add_argument("--to", required=True)
    send.add_argument("--body", required=True)
    send.add_argument("--sender", default="")
    send.add_argument("--idempotency-key", default=None, help="default: a new random key")
    send.set_defaults(run=_send)

    watch = commands.add_parser("watch", help="stream status events as JSON lines")
    _client_options(watch)
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
        _client_options(command)
        command.set_defaults(run=_webhook, action=name)

    bench_command = commands.add_parser("bench", help="measure a running gateway; prints JSON",
                                        more_arguments=_bench_arguments)
    _client_options(bench_command)
    bench_command.set_defaults(run=_bench)
    return parser


class _Parser(argparse.ArgumentParser):
    """A command parser that can add options from a module imported only when the command runs.

    ``smsgw bench`` takes its options from ``smsgw_bench``, which is not part
    of the production package: it is imported when ``bench`` is parsed, not
    for every command.
    """

    def __init__(self, *args: Any,
                 more_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._more_arguments = more_arguments

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:
        if self._more_arguments is not None:
            add, self._more_arguments = self._more_arguments, None
            add(self)
        return super().parse_known_args(args, namespace)


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    from smsgw_bench import add_arguments  # noqa: PLC0415 - only for smsgw bench

    add_arguments(parser)


def _operator_commands(commands: Any) -> None:
    """Keys, the dead-letter queue and the SMSC simulator: for operators, not tenants."""
    key = commands.add_parser("key", help="manage API keys")
    key_commands = key.add_subparsers(required=True, metavar="ACTION")
    create_key = key_commands.add_parser("create", help="issue another key for a tenant")
    create_key.add_argument("--tenant", required=True, dest="name")
    create_key.add_argument("--scope", action="append", choices=("send", "admin"), default=[],
                            help="what the key may do (repeatable; default: send)")
    create_key.set_defaults(run=_tenant_create)

    dlq = commands.add_parser("dlq", help="the dead-letter queue (needs an admin-scoped key)")
    dlq_actions = dlq.add_subparsers(required=True, metavar="ACTION")
    list_dlq = dlq_actions.add_parser("list", help="dead letters, newest first, as JSON lines")
    replay = dlq_actions.add_parser("replay", help="send dead letters again (each at most once)")
    replay.add_argument("message_ids", nargs="*", help="default: every one the filter matches")
    for command in (list_dlq, replay):
        _client_options(command)
        command.add_argument("--tenant-id", default="")
        command.add_argument("--provider", default="")
        command.add_argument("--error-code", default="")
        command.add_argument("--pending", action="store_true", help="only those not replayed")
        command.set_defaults(run=_dlq, action=(command is replay and "replay") or "list")

    smsc = commands.add_parser("smsc-sim", add_help=False,
                               help="run the SMSC simulator (SMPP 3.4 server); --help for options")
    smsc.add_argument("options", nargs=argparse.REMAINDER)
    smsc.set_defaults(run=_smsc_sim)


def _client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=None, help="default: the configured grpc_address")
    parser.add_argument("--api-key", default=None,
                        help="default: $SMSGW_API_KEY, else the local tenant's key file")


def client_target(args: argparse.Namespace, settings: Settings) -> tuple[str, str]:
    address = args.address or settings.grpc_address.replace("0.0.0.0", "127.0.0.1")  # noqa: S104
    key = args.api_key or os.environ.get("SMSGW_API_KEY") or _read_local_key(settings)
    if not key:
        raise SystemExit("no API key: pass --api-key, set SMSGW_API_KEY, "
                         "or run 'smsgw tenant create NAME'")
    return address, key


def local_key_file(settings: Settings) -> Path:
    return settings.data_dir / "local-api-key"


def _read_local_key(settings: Settings) -> str | None:
    path = local_key_file(settings)
    return path.read_text().strip() if path.exists() else None


async def _serve(_args: argparse.Namespace, settings: Settings) -> int:
    """Runs until SIGINT or SIGTERM, then stops everything it started, children included.

    The handlers come first: a signal during start-up lets the start finish
    and then stops, rather than leaving the embedded servers half started.
    Repeated signals change nothing; the stop has its own time limits.
    """
    stop = _stop_requested()
    gateway = Gateway(settings)
    try:
        await gateway.start()
        if not stop.is_set():
            key_note = await _ensure_local_tenant(gateway, settings)
            print(_banner(gateway, key_note), flush=True)
            await stop.wait()
    finally:
        await gateway.stop()
    return 0


async def _ensure_local_tenant(gateway: Gateway, configured: Settings) -> str:
    """With the embedded database, a first run gets a tenant and a key to try things with."""
    if configured.database_url:
        return "create a tenant and its API key: smsgw tenant create NAME"
    path = local_key_file(gateway.settings)
    if path.exists():
        return f"API key of tenant '{LOCAL_TENANT}': in {path} (send and watch use it)"
    _tenant, key = await gateway.tenants.create(LOCAL_TENANT)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return f"API key of tenant '{LOCAL_TENANT}': {key} (saved in {path}; send and watch use it)"


def _banner(gateway: Gateway, key_note: str) -> str:
    host = gateway.settings.grpc_address.rpartition(":")[0]
    http_host = gateway.settings.http_address.rpartition(":")[0]
    return "\n".join([
        f"Ghasi SMS Gateway serving gRPC on {host}:{gateway.grpc_port}",
        f"  metrics and health: http://{http_host}:{gateway.http_port}/metrics  /healthz  /readyz",
        *([f"  REST (JSON over HTTP): http://{gateway.settings.rest_address}/v1/messages"]
          if gateway.settings.rest_enabled else []),
        f"  {key_note}",
        "  send a first message:  .venv/bin/smsgw send --to +16502530000 --body 'Hello'",
        "  watch it, by its id:   .venv/bin/smsgw watch ID   (QUEUED, SENDING, SENT, DELIVERED)",
        *([f"  API docs:              http://{gateway.settings.rest_address}/docs"]
          if gateway.settings.rest_enabled else []),
    ])


def _stop_requested() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[str]:
    """The configured database, or the embedded one (without Redis: nothing here needs it)."""
    if settings.database_url:
        yield settings.database_url
        return
    resolved, embedded = await asyncio.to_thread(start_embedded, settings, with_redis=False)
    try:
        assert resolved.database_url
        yield resolved.database_url
    finally:
        await asyncio.to_thread(embedded.stop)


def _json(message: Message) -> str:
    """As REST answers: field names as in the proto, enum names, zero values included."""
    return json.dumps(MessageToDict(message, preserving_proto_field_name=True,
                                    always_print_fields_with_no_presence=True))


def _note(text: str) -> None:
    """Remarks for the person at the terminal go to stderr; stdout stays machine-readable."""
    print(text, file=sys.stderr)


async def _rest_config(args: argparse.Namespace, settings: Settings) -> int:
    ops_port = int(settings.http_address.rpartition(":")[2])
    path = rest_proxy.write_config(args.directory, settings.rest_address, args.grpc_port, ops_port)
    print(json.dumps({"envoy_config": str(path), "envoy": str(rest_proxy.envoy_binary())}))
    return 0


async def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as url:
        applied = await apply_migrations(settings.replace(database_url=url))
    print(json.dumps({"applied": applied}))
    if not applied:
        _note("no migrations to apply: the database is up to date")
    return 0


async def _tenant_create(args: argparse.Namespace, settings: Settings) -> int:
    async with _database(settings) as url:
        await apply_migrations(settings.replace(database_url=url))
        db = Database(url, pool_size=2)
        await db.open()
        try:
            tenant, key = await TenantDirectory(db).create(args.name, args.scope or ["send"])
        finally:
            await db.close()
    print(json.dumps({"tenant_id": str(tenant.id), "name": tenant.name, "api_key": key,
                      "scopes": sorted(tenant.scopes)}))
    _note("Keep this key: it is shown only once.")
    return 0


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
            return _failed(exc)
    print(_json(message))
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
                print(_json(item), flush=True)
        except grpc.aio.AioRpcError as exc:
            return _failed(exc)
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
        stub = _AuthorizedStub(sms_pb2_grpc.SmsServiceStub(channel), key)
        try:
            reply = await calls[args.action](stub)
        except grpc.aio.AioRpcError as exc:
            return _failed(exc)
    print(_json(reply))
    if args.action == "create":
        _note("Keep the secret: it is shown only once.")
    elif args.action == "list" and not reply.endpoints:
        _note("no webhook endpoints")
    elif args.action == "deliveries" and not reply.deliveries:
        _note("no deliveries to this endpoint yet")
    return 0


async def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    address, key = client_target(args, settings)
    where = admin_pb2.DeadLetterFilter(tenant_id=args.tenant_id, provider=args.provider,
                                       error_code=args.error_code, pending_only=args.pending)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = _AuthorizedStub(admin_pb2_grpc.SmsAdminServiceStub(channel), key)
        try:
            if args.action == "replay":
                reply = await stub.ReplayDeadLetters(admin_pb2.ReplayDeadLettersRequest(
                    message_ids=args.message_ids, filter=where))
                printed = _print_lines(reply.results)
            else:
                printed = 0
                async for item in _dead_letters(stub, where):  # page by page, as they come
                    printed += _print_lines([item])
        except grpc.aio.AioRpcError as exc:
            return _failed(exc)
    if not printed:  # on stderr, so that stdout stays empty, as a list of nothing is
        _note("no dead letters to replay" if args.action == "replay" else "no dead letters")
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


def _print_lines(items: Sequence[Message]) -> int:
    """One JSON object per line; returns how many."""
    for item in items:
        print(_json(item))
    return len(items)


def _failed(exc: grpc.aio.AioRpcError) -> int:
    _note(f"{exc.code().name}: {exc.details()}")
    return 1


async def _smsc_sim(args: argparse.Namespace, settings: Settings) -> int:
    """Runs the simulator in this process's place, so signals reach it directly."""
    del settings
    os.execv(sys.executable,  # noqa: S606 - our own module, no shell
             [sys.executable, "-m", "smsgw_simulators.smsc", *args.options])


def _status(name: str) -> Any:
    full = name.upper() if name.upper().startswith("MESSAGE_STATUS_") else \
        f"MESSAGE_STATUS_{name.upper()}"
    try:
        return sms_pb2.MessageStatus.Value(full)
    except ValueError:
        raise SystemExit(f"unknown status {name!r}") from None


class _AuthorizedStub:
    """Adds the API key to every call of a generated stub."""

    def __init__(self, stub: Any, key: str) -> None:
        self._stub, self._metadata = stub, (("authorization", f"Bearer {key}"),)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._stub, name)
        return lambda request: method(request, metadata=self._metadata, timeout=30)


async def _bench(args: argparse.Namespace, settings: Settings) -> int:
    # The faults drills start gateways and stores of their own: no key needed.
    address, key = ("", "") if args.mode == "faults" else client_target(args, settings)
    from smsgw_bench import run  # noqa: PLC0415 - not part of the production package

    with contextlib.suppress(KeyboardInterrupt):
        print(json.dumps(await run(args, address, key), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
