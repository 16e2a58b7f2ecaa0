"""``smsgw bench --mode schedule``: do scheduled messages leave on time, and not before?

On a gateway of the bench's own (smsgw_bench.scratch; the carrier simulator,
no rate cap), ``--schedule-count`` messages are submitted over the bulk
stream, every one with ``send_time`` on the same whole second about
``--schedule-ahead`` seconds ahead. The bench waits until all are sent (at
most ``--schedule-settle-seconds`` past send_time) and reads the database:
the time from send_time to the first and to the last ``sent_at``, how many
were sent before send_time (the promise is none), and how many rows stored
that send_time. ``sent_at`` is the database's clock and send_time this
machine's: both run on the same machine here.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

from smsgw_bench import gateway as bench
from smsgw_bench.scratch import scratch_gateway


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--schedule-count", type=int, default=10_000,
                        help="messages scheduled for the same second (schedule mode)")
    parser.add_argument("--schedule-ahead", type=float, default=15.0,
                        help="seconds between the start and send_time (schedule mode)")
    parser.add_argument("--schedule-settle-seconds", type=float, default=120.0,
                        help="at most this long after send_time for every message to be "
                             "sent (schedule mode)")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    provider = {"kind": "simulator", "max_in_flight": 2000}
    async with scratch_gateway(args, "schedule", provider, ("scheduled",)) as (rig, tenants):
        assert rig.gateway is not None
        target = bench.Target(rig.gateway.address, (
            ("authorization", f"Bearer {tenants['scheduled'].api_key}"),), rig.run)
        try:
            return {"server": rig.server_revision(), **await _run(args, target, rig.url)}
        except Exception as exc:
            raise RuntimeError(f"{exc}\ngateway log:\n{rig.log_tail()}") from exc


async def _run(args: argparse.Namespace, target: bench.Target, url: str) -> dict[str, Any]:
    send_at = datetime.fromtimestamp(math.ceil(time.time() + args.schedule_ahead), UTC)
    requests = bench._requests(target, "scheduled", args.schedule_count)
    for request in requests:
        request.send_time.FromDatetime(send_at)
    channels, stubs = bench._stubs(target, 1)
    try:
        began = time.perf_counter()
        async with asyncio.timeout(max(60.0, args.schedule_ahead)):
            accepted, failed = await bench._stream(stubs[0], target, requests, 500)
        submit_seconds = time.perf_counter() - began
    finally:
        await bench._close(channels)
    submitted_at = datetime.now(UTC)
    settled = await _settle(url, accepted, send_at, args.schedule_settle_seconds)
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS messages, count(sent_at) AS sent,"
            " count(*) FILTER (WHERE sent_at < $1) AS sent_early,"
            " count(*) FILTER (WHERE send_at = $1) AS stored_send_time,"
            " min(sent_at) AS first_sent, max(sent_at) AS last_sent FROM messages", send_at)
    finally:
        await conn.close()
    assert row is not None
    first, last = row["first_sent"], row["last_sent"]
    span = (last - first).total_seconds() if first is not None else 0.0
    return {
        "count": args.schedule_count, "accepted": accepted, "errors": failed,
        "send_time": send_at.isoformat(), "submit_seconds": round(submit_seconds, 2),
        "submitted_before_send_time": submitted_at < send_at,
        "stored_send_time": int(row["stored_send_time"]), "sent": int(row["sent"]),
        "all_sent": settled, "sent_before_send_time": int(row["sent_early"]),
        "send_time_to_first_sent_ms": _after(send_at, first),
        "send_time_to_last_sent_ms": _after(send_at, last),
        "first_to_last_sent_seconds": round(span, 3),
        "sent_per_second": round(int(row["sent"]) / span) if span > 0 else None}


async def _settle(url: str, accepted: int, send_at: datetime, seconds: float) -> bool:
    """Waits until ``accepted`` messages have a sent_at, or ``seconds`` past send_time."""
    deadline = send_at.timestamp() + seconds
    conn = await asyncpg.connect(url)
    try:
        while time.time() < deadline:
            if await conn.fetchval("SELECT count(sent_at) FROM messages") >= accepted:
                return True
            await asyncio.sleep(0.25)
    finally:
        await conn.close()
    return False


def _after(send_at: datetime, moment: datetime | None) -> float | None:
    return round((moment - send_at).total_seconds() * 1000, 1) if moment is not None else None
