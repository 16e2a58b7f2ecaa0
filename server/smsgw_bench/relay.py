"""``smsgw bench --mode relay-drain``: how fast the relay drains a backlog, alone.

On a scratch database (smsgw_bench.scratch: created on the given Postgres,
dropped at the end, so no other relay takes its messages) it starts a gateway
with the relay off, which takes ``--drain-count`` messages over the bulk
stream; that gateway stops. A second one on the same database, with the relay
on and the server's default provider, the carrier simulator
(``--drain-latency-ms``, otherwise default settings), then drains the outbox.
The bench polls ``count(*)`` of the outbox until it is empty (bounded by
``--max-seconds``); the rate is read from the database by the server's clock:
messages over the span from the first ``sent_at`` to the last.
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
import os
import time
from pathlib import Path
from typing import Any

import asyncpg

from smsgw_bench import gateway as client
from smsgw_bench.scratch import ScratchGateway, Tenant, scratch_gateway

TENANT = "bench-relay"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--drain-count", type=int, default=50_000,
                        help="backlog the relay drains (relay-drain mode)")
    parser.add_argument("--drain-latency-ms", type=float, default=1.0,
                        help="the carrier simulator's send latency (relay-drain mode)")
    # --database-url, --redis-url and --server-pythonpath: smsgw_bench.scratch's.


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    deadline = time.monotonic() + args.max_seconds
    # No provider: the default one, the simulator these settings describe.
    latency = {"SMSGW_SIMULATOR_LATENCY_MS": str(args.drain_latency_ms)}
    async with scratch_gateway(args, "relay", None, (TENANT,),
                               {**latency, "SMSGW_RELAY_ENABLED": "false"}) as (rig, tenants):
        try:
            ingest = await _ingest(args, rig, tenants[TENANT], deadline)
            relay = await rig.restart({**latency, "SMSGW_RELAY_ENABLED": "true"})
            started = time.perf_counter()
            left = await _outbox_left(rig.url)
            while left and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                left = await _outbox_left(rig.url)
            polled = time.perf_counter() - started
            sent, span, migrations = await _sent_span(rig.url)
            cpu = {"gateway": _cpu_seconds(relay.process.pid) if relay.process else None,
                   "postgres_backends": await _backends_cpu_seconds(rig.url)}
        except Exception as exc:
            raise RuntimeError(f"{exc}\ngateway log:\n{rig.log_tail()}") from exc
    accepted = ingest["messages"]
    return {**ingest, "outbox_left": left, "sent": sent,
            # Server clock: the first sent_at to the last.
            "drain_seconds": round(span, 3),
            "msg_per_s": round(accepted / span) if span > 0 and not left else None,
            # Client clock, from the relay gateway's start to an empty outbox.
            "polled_seconds": round(polled, 2),
            # CPU the relay gateway and its Postgres sessions used from their start
            # (Linux only; None elsewhere): where a slower drain spends its time.
            "cpu_seconds": cpu,
            "server": _server(rig.pythonpath),
            "migrations": migrations, "simulator_latency_ms": args.drain_latency_ms}


async def _ingest(args: argparse.Namespace, rig: ScratchGateway, tenant: Tenant,
                  deadline: float) -> dict[str, Any]:
    """The backlog, over the bulk stream, into the gateway with the relay off."""
    assert rig.gateway is not None
    target = client.Target(rig.gateway.address,
                           (("authorization", f"Bearer {tenant.api_key}"),), rig.run)
    requests = client._requests(target, "drain", args.drain_count)
    channels, stubs = client._stubs(target, 1)
    try:
        began = time.perf_counter()
        async with asyncio.timeout(max(1.0, deadline - time.monotonic())):
            accepted, failed = await client._stream(stubs[0], target, requests, args.chunk)
        seconds = time.perf_counter() - began
    finally:
        await client._close(channels)
    return {"messages": accepted, "ingest_errors": failed, "ingest_seconds": round(seconds, 2)}


def _server(pythonpath: str | None) -> str:
    """The server/ directory the gateways ran from, or this build's."""
    return str(Path(pythonpath).resolve()) if pythonpath else "this build"


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
