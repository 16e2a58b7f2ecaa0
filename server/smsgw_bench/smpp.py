"""``smsgw bench --mode smpp``: sending through SMPP 3.4, end to end.

It starts the SMSC simulator and, on a database of its own (created beside
the configured one and dropped afterwards, so no other relay takes its
messages), a gateway with its relay off that accepts the backlog over gRPC.
That gateway stops; a second one, whose only provider is the SMPP adapter,
then drains the backlog: claim from the outbox, ``submit_sm`` through the
window, ``submit_sm_resp``, SENT written back, the receipt, DELIVERED. The
rates are read from the database by the server's clock, so ingest (the bulk
mode measures it) and sending are not mixed into one figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from smsgw.adapters.postgres.database import Database
from smsgw.adapters.postgres.tenants import TenantDirectory


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmppRig:
    """The SMSC simulator, a scratch database, and gateways started on demand."""

    def __init__(self, window: int, sessions: int, env: dict[str, str]) -> None:
        if not (env.get("SMSGW_DATABASE_URL") and env.get("SMSGW_REDIS_URL")):
            raise SystemExit("--mode smpp starts gateways of its own: set SMSGW_DATABASE_URL "
                             "and SMSGW_REDIS_URL to the stores of the gateway under test")
        self._env = env
        self.work = Path(tempfile.mkdtemp(prefix="smsgw-bench-smpp-"))
        self.stats = self.work / "smsc-stats.json"
        self._smsc_port = _free_port()
        self._provider = {"name": "smsc", "kind": "smpp", "host": "127.0.0.1",
                          "port": self._smsc_port, "system_id": "bench", "password": "bench",
                          "window": window, "sessions": sessions,
                          "max_in_flight": 4 * window * sessions}
        self._smsc: subprocess.Popen[bytes] | None = None
        self._gateway: subprocess.Popen[bytes] | None = None
        self.database = ""

    async def start(self) -> None:
        self._smsc = subprocess.Popen(  # noqa: S603, ASYNC220 - our module; outlives this call
            [sys.executable, "-m", "smsgw_simulators.smsc", "--port", str(self._smsc_port),
             "--receipt-delay-ms", "20", "--stats", str(self.stats)], stdout=subprocess.PIPE)
        assert self._smsc.stdout is not None
        await asyncio.wait_for(asyncio.to_thread(self._smsc.stdout.readline), 30)
        self.database = await _scratch_database(self._env["SMSGW_DATABASE_URL"])

    async def start_gateway(self, *, relay: bool) -> str:
        """A gateway on the scratch database; returns its gRPC address."""
        grpc_port, http_port = _free_port(), _free_port()
        child_env = {**self._env, "SMSGW_PROVIDERS": json.dumps([self._provider]),
                     "SMSGW_DATABASE_URL": self.database,
                     "SMSGW_RELAY_ENABLED": str(relay).lower(),
                     "SMSGW_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
                     "SMSGW_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
                     "SMSGW_REST_ENABLED": "false", "SMSGW_WEBHOOKS_ENABLED": "false",
                     "SMSGW_LOG_LEVEL": "WARNING", "SMSGW_DATA_DIR": str(self.work)}
        with (self.work / "gateway.log").open("ab") as log:
            self._gateway = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "smsgw", "serve"], env=child_env, stdout=log,
                stderr=log)
        await _wait_listening(http_port, self._gateway)
        return f"127.0.0.1:{grpc_port}"

    async def stop_gateway(self) -> None:
        gateway, self._gateway = self._gateway, None
        if gateway is not None and gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            await asyncio.to_thread(gateway.wait)

    async def api_key(self) -> str:
        return await _api_key(self.database)

    async def stop(self) -> None:
        await self.stop_gateway()
        if self._smsc is not None:
            if self._smsc.poll() is None:
                self._smsc.send_signal(signal.SIGTERM)
                await asyncio.to_thread(self._smsc.wait)
            if self._smsc.stdout is not None:
                self._smsc.stdout.close()
        await _drop_scratch(self._env["SMSGW_DATABASE_URL"])


_SCRATCH = "smsgw_bench_smpp"


async def _scratch_database(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_SCRATCH} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {_SCRATCH}")
    finally:
        await conn.close()
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{_SCRATCH}"))


async def _drop_scratch(url: str) -> None:
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {_SCRATCH} WITH (FORCE)")
        finally:
            await conn.close()


async def _api_key(url: str) -> str:
    db = Database(url, pool_size=1)
    await db.open()
    try:
        _tenant, key = await TenantDirectory(db).create("bench-smpp")
    finally:
        await db.close()
    return key


async def _wait_listening(port: int, child: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if child.poll() is not None:
            raise SystemExit("the SMPP gateway exited; see its gateway.log")
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await asyncio.sleep(0.5)  # the relay binds to the SMSC right after
            return
        await asyncio.sleep(0.1)
    raise SystemExit("the SMPP gateway did not start")


def smsc_summary(stats_file: Path) -> dict[str, Any]:
    if not stats_file.exists():
        return {}
    stats = json.loads(stats_file.read_text())
    return {k: stats.get(k) for k in ("submits", "accepted", "throttled", "receipts_sent",
                                      "duplicate_client_refs")}


@dataclass(frozen=True, slots=True)
class Progress:
    sent: int  # handed over (SENT or settled since)
    delivered: int
    sent_span: float  # seconds from the first SENT to the last
    delivered_span: float  # seconds from the first SENT to the last DELIVERED


async def progress(database: str) -> Progress:
    """Read from the database, by the server's clock: no client has to keep up with events."""
    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status IN (3, 4, 5)) AS sent,"
            " count(*) FILTER (WHERE status = 4) AS delivered,"
            " EXTRACT(EPOCH FROM max(sent_at) - min(sent_at)) AS sent_span,"
            " EXTRACT(EPOCH FROM max(delivered_at) - min(sent_at)) AS delivered_span"
            " FROM messages")
    finally:
        await conn.close()
    assert row is not None
    return Progress(int(row["sent"]), int(row["delivered"]), float(row["sent_span"] or 0.0),
                    float(row["delivered_span"] or 0.0))


def environment() -> dict[str, str]:
    return dict(os.environ)
