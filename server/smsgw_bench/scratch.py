"""A gateway of the bench's own: ``smsgw serve`` on a scratch database, for the self-started modes.

``--mode lanes``, ``--mode schedule`` and ``--mode relay-drain`` measure what
the relay does with a known mix of traffic, so no other relay may take their
messages: each run creates a database of its own on the given Postgres
(dropped at the end), writes an ``SMSGW_CONFIG`` file whose only provider is
the carrier simulator under a name unique to the run (its shared token bucket
in Redis, ``smsgw:rate:<name>``, is the run's alone, and deleted at the end),
creates tenants with ``smsgw tenant create`` and starts ``smsgw serve``. A
mode without a provider gets no config file: the server's default provider,
the carrier simulator its ``SMSGW_SIMULATOR_*`` settings describe. A mode may
give the gateway settings of its own (extra environment), and stop it and
start another on the same database with other settings (``restart``).
Every child runs with ``--server-pythonpath`` (or
``SMSGW_BENCH_SERVER_PYTHONPATH``) as its PYTHONPATH when given, so the same
bench can measure another checkout's server (its code and its migrations).
Everything is undone on the way out, on Ctrl-C and SIGTERM too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from smsgw_bench.drills.faults import Gateway

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url",
                        default=os.environ.get("SMSGW_DATABASE_URL") or DEFAULT_DATABASE,
                        help="lanes/schedule/relay-drain modes: the Postgres to create a "
                             "scratch database on (default $SMSGW_DATABASE_URL, else "
                             "%(default)s)")
    parser.add_argument("--redis-url", default=os.environ.get("SMSGW_REDIS_URL") or DEFAULT_REDIS,
                        help="lanes/schedule/relay-drain modes: the Redis of the gateway "
                             "they start")
    parser.add_argument("--server-pythonpath",
                        default=os.environ.get("SMSGW_BENCH_SERVER_PYTHONPATH") or None,
                        help="lanes/schedule/relay-drain modes: PYTHONPATH of the gateway "
                             "they start (another checkout's server/; default "
                             "$SMSGW_BENCH_SERVER_PYTHONPATH, else this process's)")


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    tenant_id: str
    api_key: str


@dataclass
class ScratchGateway:
    """One run's database, config file, tenants and gateway process."""

    database_url: str  # the server's URL; the scratch database is created beside it
    redis_url: str
    pythonpath: str | None
    label: str  # "lanes", "schedule", "relay": in the database's and the provider's names
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="smsgw-bench-")))
    gateway: Gateway | None = None
    created: bool = False
    configured: bool = False  # a config file names the provider

    @property
    def provider(self) -> str:
        return f"bench-{self.label}-{self.run}"

    @property
    def database(self) -> str:
        return f"smsgw_bench_{self.label}_{self.run}"

    @property
    def url(self) -> str:
        """The scratch database's URL."""
        return urlunsplit(urlsplit(self.database_url)._replace(path=f"/{self.database}"))

    def environment(self) -> dict[str, str]:
        """What every child gets on top of this process's non-SMSGW environment."""
        env = {"SMSGW_DATABASE_URL": self.url, "SMSGW_REDIS_URL": self.redis_url,
               "SMSGW_DATA_DIR": str(self.work / "data"), "SMSGW_REST_ENABLED": "false",
               "SMSGW_WEBHOOKS_ENABLED": "false", "SMSGW_LOG_LEVEL": "WARNING"}
        if self.configured:
            env["SMSGW_CONFIG"] = str(self.work / "smsgw.toml")
        if self.pythonpath is not None:
            env["PYTHONPATH"] = self.pythonpath
        return env

    def server_revision(self) -> str | None:
        """The git commit of the server that runs (the checkout PYTHONPATH names)."""
        where = (self.pythonpath or os.environ.get("PYTHONPATH") or "").split(os.pathsep)[0]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(  # noqa: S603
                ["git", "-C", where or ".", "describe", "--always", "--dirty"],  # noqa: S607
                capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        return None

    async def start(self, provider: Mapping[str, Any] | None, tenants: Sequence[str],
                    env: Mapping[str, str] | None = None) -> dict[str, Tenant]:
        """Creates the database, the config (none without a provider) and the tenants;
        starts the gateway, with ``env`` on top of its environment."""
        conn = await asyncpg.connect(self.database_url)
        try:
            await conn.execute(f'CREATE DATABASE "{self.database}"')
            self.created = True
        finally:
            await conn.close()
        if provider is not None:
            (self.work / "smsgw.toml").write_text(_toml({"name": self.provider, **provider}))
            self.configured = True
        made = await asyncio.gather(*(self._tenant(name) for name in tenants))
        await self.restart(env or {})
        return {tenant.name: tenant for tenant in made}

    async def restart(self, env: Mapping[str, str]) -> Gateway:
        """Stops the gateway, if one runs, and starts another on the same database, with
        ``env`` (settings of its own: SMSGW_RELAY_ENABLED, say) on top of the environment.
        Both write to the same log."""
        if self.gateway is not None:
            await asyncio.to_thread(self.gateway.stop)
        self.gateway = Gateway({**self.environment(), **env}, self.work / "gateway.log",
                               inherit_settings=False)
        await self.gateway.start()
        return self.gateway

    async def _tenant(self, name: str) -> Tenant:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "smsgw", "tenant", "create", name,
            env={**base, **self.environment()}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(child.communicate(), 120)
        if child.returncode != 0:
            raise RuntimeError(f"smsgw tenant create {name} failed: {err.decode()[-2000:]}")
        made = json.loads(out)
        return Tenant(name, str(made["tenant_id"]), str(made["api_key"]))

    def log_tail(self, chars: int = 2000) -> str:
        log = self.work / "gateway.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    async def stop(self) -> None:
        """Stops the gateway; drops the database and the bucket; removes the files."""
        if self.gateway is not None:
            await asyncio.to_thread(self.gateway.stop)
        if self.created:
            with contextlib.suppress(OSError, asyncpg.PostgresError):
                conn = await asyncpg.connect(self.database_url)
                try:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
                finally:
                    await conn.close()
        with contextlib.suppress(Exception):
            client = aioredis.from_url(self.redis_url)
            try:
                await client.delete(f"smsgw:rate:{self.provider}")
            finally:
                await client.aclose()
        shutil.rmtree(self.work, ignore_errors=True)


@contextlib.asynccontextmanager
async def scratch_gateway(args: argparse.Namespace, label: str,
                          provider: Mapping[str, Any] | None, tenants: Sequence[str],
                          env: Mapping[str, str] | None = None
                          ) -> AsyncIterator[tuple[ScratchGateway, dict[str, Tenant]]]:
    """A started ScratchGateway, undone on the way out (SIGTERM cancels the run, as Ctrl-C).

    ``provider`` None: no config file, the server's default provider; ``env``: the
    gateway's settings on top of the scratch environment."""
    rig = ScratchGateway(args.database_url, args.redis_url, args.server_pythonpath, label)
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    terminated: list[bool] = []

    def terminate() -> None:
        terminated.append(True)
        if task is not None:
            task.cancel()

    handled = True
    try:
        loop.add_signal_handler(signal.SIGTERM, terminate)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals
        handled = False
    try:
        yield rig, await rig.start(provider, tenants, env)
    except asyncio.CancelledError:
        if terminated:  # cleaned up below: end as a terminated process, without a traceback
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    finally:
        # Shielded: a second Ctrl-C must not leave the gateway or the database behind.
        await asyncio.shield(rig.stop())
        if handled:
            loop.remove_signal_handler(signal.SIGTERM)


def _toml(provider: Mapping[str, Any]) -> str:
    """One ``[[providers]]`` table (strings, numbers and booleans are all it needs)."""
    lines = ["[[providers]]"]
    for key, value in provider.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"
