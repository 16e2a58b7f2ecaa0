"""``smsgw bench --mode smpp``: the relay measured through SMPP 3.4, end to end.

It starts the SMSC simulator and a second gateway process whose only
provider is the SMPP adapter bound to it, on a database of its own (created
beside the configured one and dropped afterwards, so no other relay takes
its messages), then runs the relay
measurement against that gateway: accept over gRPC, claim from the outbox,
``submit_sm`` through the window, ``submit_sm_resp``, SENT written back.
Both children are stopped when it ends.
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
from collections.abc import AsyncIterator
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


@contextlib.asynccontextmanager
async def smpp_gateway(window: int, sessions: int, env: dict[str, str]) -> AsyncIterator[
        tuple[str, str, Path, str]]:
    """Yields a gateway sending through SMPP: address, API key, SMSC stats file, database."""
    if not (env.get("SMSGW_DATABASE_URL") and env.get("SMSGW_REDIS_URL")):
        raise SystemExit("--mode smpp starts a second gateway: set SMSGW_DATABASE_URL and "
                         "SMSGW_REDIS_URL to the stores of the gateway under test")
    work = Path(tempfile.mkdtemp(prefix="smsgw-bench-smpp-"))
    smsc_port, grpc_port, http_port = _free_port(), _free_port(), _free_port()
    smsc = subprocess.Popen(  # noqa: S603, ASYNC220 - our module; outlives this call
        [sys.executable, "-m", "smsgw.simulators.smsc", "--port", str(smsc_port),
         "--receipt-delay-ms", "20", "--stats", str(work / "smsc-stats.json")],
        stdout=subprocess.PIPE)
    gateway: subprocess.Popen[bytes] | None = None
    try:
        assert smsc.stdout is not None
        await asyncio.wait_for(asyncio.to_thread(smsc.stdout.readline), 30)
        provider = {"name": "smsc", "kind": "smpp", "host": "127.0.0.1", "port": smsc_port,
                    "system_id": "bench", "password": "bench", "window": window,
                    "sessions": sessions, "max_in_flight": 4 * window * sessions}
        database = await _scratch_database(env["SMSGW_DATABASE_URL"])
        child_env = {**env, "SMSGW_PROVIDERS": json.dumps([provider]),
                     "SMSGW_DATABASE_URL": database,
                     "SMSGW_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
                     "SMSGW_HTTP_ADDRESS": f"127.0.0.1:{http_port}",
                     "SMSGW_REST_ENABLED": "false", "SMSGW_WEBHOOKS_ENABLED": "false",
                     "SMSGW_LOG_LEVEL": "WARNING", "SMSGW_DATA_DIR": str(work)}
        with (work / "gateway.log").open("wb") as log:
            gateway = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "smsgw", "serve"], env=child_env, stdout=log,
                stderr=log)
        await _wait_listening(http_port, gateway)
        key = await _api_key(database)
        yield f"127.0.0.1:{grpc_port}", key, work / "smsc-stats.json", database
    finally:
        for child in (gateway, smsc):
            if child is not None and child.poll() is None:
                child.send_signal(signal.SIGTERM)
                await asyncio.to_thread(child.wait)
        if smsc.stdout is not None:
            smsc.stdout.close()
        await _drop_scratch(env["SMSGW_DATABASE_URL"])


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
    span: float  # seconds from the first SENT to the last
    after_submit: int  # SENT once the submission had ended: the relay alone
    after_submit_span: float


async def progress(database: str, submit_ended: float) -> Progress:
    """Read from the database, by the server's clock: no client has to keep up with events."""
    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE status IN (3, 4, 5)) AS sent,"
            " count(*) FILTER (WHERE status = 4) AS delivered,"
            " EXTRACT(EPOCH FROM max(sent_at) - min(sent_at)) AS span,"
            " count(*) FILTER (WHERE sent_at > to_timestamp($1)) AS after,"
            " EXTRACT(EPOCH FROM max(sent_at) - to_timestamp($1)) AS after_span"
            " FROM messages", submit_ended)
    finally:
        await conn.close()
    assert row is not None
    return Progress(int(row["sent"]), int(row["delivered"]), float(row["span"] or 0.0),
                    int(row["after"]), float(row["after_span"] or 0.0))


def environment() -> dict[str, str]:
    return dict(os.environ)
