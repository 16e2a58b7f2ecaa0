"""``smsgw bench --mode relay-drain``: how fast the relay drains a backlog, alone.

On a database of its own (created on the given Postgres, dropped at the end,
so no other relay takes its messages) it starts a gateway with the relay off,
which takes ``--drain-count`` messages over the bulk stream; that gateway
stops. A second one, with the relay on and the carrier simulator as its
provider (``--drain-latency-ms``, otherwise default settings), then drains
the outbox. The bench polls ``count(*)`` of the outbox until it is empty
(bounded by ``--max-seconds``); the rate is read from the database by the
server's clock: messages over the span from the first ``sent_at`` to the last.
Ingest (the bulk mode measures it) is not mixed into the figure.

``--server-pythonpath DIR`` (or ``SMSGW_BENCH_SERVER_PYTHONPATH``) runs the
gateways from another checkout's ``server/`` directory, with that checkout's
migrations, for A/B runs against an older build: the client side (this
module, the gRPC stubs) stays the same, the server is the other build's::

    git worktree add /tmp/wt-old 075f9f6
    smsgw bench --mode relay-drain --server-pythonpath /tmp/wt-old/server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from smsgw_bench import gateway as client

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--drain-count", type=int, default=50_000,
                        help="backlog the relay drains (relay-drain mode)")
    parser.add_argument("--drain-latency-ms", type=float, default=1.0,
                        help="the carrier simulator's send latency (relay-drain mode)")
    # --database-url, --redis-url and --server-pythonpath: smsgw_bench.scratch's.


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    rig = GatewayRig(
        database_url=args.database_url or os.environ.get("SMSGW_DATABASE_URL")
        or DEFAULT_DATABASE_URL,
        redis_url=args.redis_url or os.environ.get("SMSGW_REDIS_URL") or DEFAULT_REDIS_URL,
        server_path=args.server_pythonpath
        or os.environ.get("SMSGW_BENCH_SERVER_PYTHONPATH") or None,
        latency_ms=args.drain_latency_ms)
    deadline = time.monotonic() + args.max_seconds
    await rig.start()
    try:
        address = await rig.start_gateway(relay=False)
        key = await rig.api_key()
        target = client.Target(address, (("authorization", f"Bearer {key}"),),
                               uuid.uuid4().hex[:12])
        requests = client._requests(target, "drain", args.drain_count)
        channels, stubs = client._stubs(target, 1)
        ingest_started = time.perf_counter()
        async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
            accepted, failed = await client._stream(stubs[0], target, requests, args.chunk)
        ingest_seconds = time.perf_counter() - ingest_started
        await client._close(channels)
        await rig.stop_gateway()

        await rig.start_gateway(relay=True)
        started = time.perf_counter()
        left = await _outbox_left(rig.database)
        while left and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            left = await _outbox_left(rig.database)
        polled = time.perf_counter() - started
        sent, span, migrations = await _sent_span(rig.database)
        cpu = {"gateway": rig.gateway_cpu_seconds(),
               "postgres_backends": await _backends_cpu_seconds(rig.database)}
    finally:
        await rig.stop()
    return {"messages": accepted, "ingest_errors": failed,
            "ingest_seconds": round(ingest_seconds, 2), "outbox_left": left, "sent": sent,
            # Server clock: the first sent_at to the last.
            "drain_seconds": round(span, 3),
            "msg_per_s": round(accepted / span) if span > 0 and not left else None,
            # Client clock, from the relay gateway's start to an empty outbox.
            "polled_seconds": round(polled, 2),
            # CPU the relay gateway and its Postgres sessions used from their start
            # (Linux only; None elsewhere): where a slower drain spends its time.
            "cpu_seconds": cpu,
            "server": rig.server_path or "this build", "migrations": migrations,
            "simulator_latency_ms": args.drain_latency_ms}


class GatewayRig:
    """A scratch database and, on demand, one gateway on it run as ``python -m smsgw``."""

    def __init__(self, *, database_url: str, redis_url: str, server_path: str | None,
                 latency_ms: float) -> None:
        self._admin_url = database_url
        self._redis_url = redis_url
        self.server_path = str(Path(server_path).resolve()) if server_path else None
        self._latency_ms = latency_ms
        self.work = Path(tempfile.mkdtemp(prefix="smsgw-bench-relay-"))
        self._name = f"smsgw_bench_relay_{uuid.uuid4().hex[:8]}"
        self.database = ""
        self._gateway: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
        if self.server_path:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (self.server_path, os.environ.get("PYTHONPATH")) if p)
        return {**env, "SMSGW_DATABASE_URL": self.database, "SMSGW_REDIS_URL": self._redis_url,
                "SMSGW_LOG_LEVEL": "WARNING", "SMSGW_DATA_DIR": str(self.work)}

    async def start(self) -> None:
        conn = await asyncpg.connect(self._admin_url)
        try:
            await conn.execute(f"CREATE DATABASE {self._name}")
        finally:
            await conn.close()
        self.database = urlunsplit(urlsplit(self._admin_url)._replace(path=f"/{self._name}"))

    async def start_gateway(self, *, relay: bool) -> str:
        """A gateway on the scratch database (it migrates it); returns its gRPC address."""
        grpc_port, http_port = _free_port(), _free_port()
        env = {**self._env(), "SMSGW_RELAY_ENABLED": str(relay).lower(),
               "SMSGW_SIMULATOR_LATENCY_MS": str(self._latency_ms),
               "SMSGW_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
               "SMSGW_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
               "SMSGW_REST_ENABLED": "false", "SMSGW_WEBHOOKS_ENABLED": "false"}
        with (self.work / "gateway.log").open("ab") as log:
            self._gateway = subprocess.Popen(  # noqa: ASYNC220 - our module
                [sys.executable, "-m", "smsgw", "serve"], env=env, stdout=log, stderr=log,
                cwd=self.work)
        await _wait_listening(http_port, self._gateway, self.work / "gateway.log")
        return f"127.0.0.1:{grpc_port}"

    async def api_key(self) -> str:
        """A tenant made by the server build's own CLI, so its schema is the build's."""
        made = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "smsgw", "tenant", "create", "bench-relay"],
            env=self._env(), cwd=self.work, capture_output=True, check=True, timeout=60)
        return str(json.loads(made.stdout)["api_key"])

    def gateway_cpu_seconds(self) -> float | None:
        return _cpu_seconds(self._gateway.pid) if self._gateway is not None else None

    async def stop_gateway(self) -> None:
        gateway, self._gateway = self._gateway, None
        if gateway is not None and gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(gateway.wait), 30)
            except TimeoutError:
                gateway.kill()
                await asyncio.to_thread(gateway.wait)

    async def stop(self) -> None:
        await self.stop_gateway()
        if self.database:
            with contextlib.suppress(Exception):
                conn = await asyncpg.connect(self._admin_url)
                try:
                    await conn.execute(f"DROP DATABASE IF EXISTS {self._name} WITH (FORCE)")
                finally:
                    await conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_listening(port: int, child: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(600):
        if child.poll() is not None:
            raise SystemExit(f"the bench's gateway exited; see {log}")
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"the bench's gateway did not start; see {log}")


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a live process, from /proc (None where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


async def _backends_cpu_seconds(database: str) -> float | None:
    """The CPU of the Postgres sessions on the scratch database (same machine only)."""
    conn = await asyncpg.connect(database)
    try:
        pids = [r[0] for r in await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()")]
    finally:
        await conn.close()
    seconds = [_cpu_seconds(pid) for pid in pids]
    return round(sum(s for s in seconds if s is not None), 2) if pids and None not in seconds \
        else None


async def _outbox_left(database: str) -> int:
    conn = await asyncpg.connect(database)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox"))
    finally:
        await conn.close()


async def _sent_span(database: str) -> tuple[int, float, int]:
    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow(
            "SELECT count(sent_at) AS sent,"
            " EXTRACT(EPOCH FROM max(sent_at) - min(sent_at)) AS span FROM messages")
        migrations = int(await conn.fetchval("SELECT count(*) FROM schema_migrations"))
    finally:
        await conn.close()
    assert row is not None
    return int(row["sent"]), float(row["span"] or 0.0), migrations
