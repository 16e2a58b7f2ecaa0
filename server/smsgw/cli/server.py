"""Commands that run the gateway or change its database: serve, migrate, rest-config, tenant."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from smsgw.adapters.embedded import start_embedded
from smsgw.adapters.postgres.database import Database
from smsgw.adapters.postgres.tenants import TenantDirectory
from smsgw.api import rest_proxy
from smsgw.app import Gateway, apply_migrations
from smsgw.cli.common import LOCAL_TENANT, Commands, local_key_file, note
from smsgw.settings import Settings


def add_commands(commands: Commands) -> Commands:
    """Returns the ``tenant`` command's actions, which operators.py adds to."""
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
    create.set_defaults(run=tenant_create)
    return tenant_commands


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
        note("no migrations to apply: the database is up to date")
    return 0


async def tenant_create(args: argparse.Namespace, settings: Settings) -> int:
    """``tenant create NAME`` and ``key create --tenant NAME``: a tenant's new key, shown once."""
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
    note("Keep this key: it is shown only once.")
    return 0
