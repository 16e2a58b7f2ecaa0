"""``smsgw bench --mode lanes``: does a marketing backlog starve OTPs and transactional mail?

Issue #11's traffic policy, measured end to end on a gateway of the bench's
own (smsgw_bench.scratch) whose only provider is the carrier simulator capped
at ``--lanes-rate-cap`` msg/s by its shared token bucket:

1. tenant A submits ``--lanes-marketing`` MARKETING messages over the bulk
   stream, as fast as they are accepted;
2. then, while that backlog drains, tenant B sends OTPs at
   ``--lanes-otp-rate``/s and tenant C transactional messages at
   ``--lanes-transactional-rate``/s, unary ``SendMessage``, open loop, for
   ``--lanes-seconds``;
3. the bench waits until B's and C's messages are sent and A's backlog has
   drained (at most ``--lanes-settle-seconds``), then reads the database.

Every figure is by the server's clock, from the messages table: latency is
``sent_at - created_at`` (accept commit to the SENT write-back); the window
runs from B's or C's first accept to their last. The targets: B's p99 within
200 ms, C's within 500 ms, and A drained at no less than 85 % of the capacity
B and C left it (the cap minus their rates actually sent in the window).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import grpc

from smsgw.domain.status import MessageStatus
from smsgw.proto import sms_pb2 as pb
from smsgw.proto import sms_pb2_grpc
from smsgw_bench import gateway as bench
from smsgw_bench.scratch import ScratchGateway, Tenant, scratch_gateway

TENANTS = ("a-marketing", "b-otp", "c-transactional")
OTP_P99_MS, TRANSACTIONAL_P99_MS, DRAIN_SHARE = 200.0, 500.0, 0.85


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lanes-marketing", type=int, default=100_000,
                        help="tenant A's marketing backlog (lanes mode)")
    parser.add_argument("--lanes-otp-rate", type=float, default=20.0,
                        help="tenant B's OTPs per second (lanes mode)")
    parser.add_argument("--lanes-transactional-rate", type=float, default=50.0,
                        help="tenant C's transactional messages per second (lanes mode)")
    parser.add_argument("--lanes-seconds", type=float, default=60.0,
                        help="how long B and C send (lanes mode)")
    parser.add_argument("--lanes-rate-cap", type=float, default=500.0,
                        help="the simulator's shared token bucket, msg/s (lanes mode)")
    parser.add_argument("--lanes-settle-seconds", type=float, default=600.0,
                        help="at most this long, after B and C stop, for every message "
                             "to be sent (lanes mode)")


@dataclass
class Paced:
    """One tenant's open-loop unary load: what it offered and what was accepted."""

    offered: int = 0
    accepted: int = 0
    errors: Counter[str] = field(default_factory=Counter)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    provider = {"kind": "simulator", "rate_per_second": args.lanes_rate_cap,
                "max_in_flight": 2000}
    async with scratch_gateway(args, "lanes", provider, TENANTS) as (rig, tenants):
        try:
            load = await _scenario(args, rig, tenants)
            return {"server": rig.server_revision(), "rate_cap": args.lanes_rate_cap,
                    **load, **await _report(args, rig.url, tenants)}
        except Exception as exc:
            raise RuntimeError(f"{exc}\ngateway log:\n{rig.log_tail()}") from exc


async def _scenario(args: argparse.Namespace, rig: ScratchGateway,
                    tenants: dict[str, Tenant]) -> dict[str, Any]:
    a, b, c = (_target(rig, tenants[name]) for name in TENANTS)
    marketing = bench._requests(a, "marketing", args.lanes_marketing)
    for request in marketing:
        request.traffic_class = pb.TRAFFIC_CLASS_MARKETING
    channels, stubs = bench._stubs(a, 3)
    try:
        began = time.perf_counter()
        async with asyncio.timeout(max(120.0, args.lanes_marketing / 500)):
            accepted, failed = await bench._stream(stubs[0], a, marketing, 500)
        ingest = time.perf_counter() - began
        otp, transactional = Paced(), Paced()
        await asyncio.gather(
            _paced(stubs[1], b, pb.TRAFFIC_CLASS_OTP, args.lanes_otp_rate, args.lanes_seconds,
                   otp),
            _paced(stubs[2], c, pb.TRAFFIC_CLASS_TRANSACTIONAL,
                   args.lanes_transactional_rate, args.lanes_seconds, transactional))
    finally:
        await bench._close(channels)
    settled = time.perf_counter()
    drained = await _settle(rig.url, args.lanes_settle_seconds)
    return {"a_ingest": {"accepted": accepted, "errors": failed, "seconds": round(ingest, 2),
                         "accepted_per_second": round(accepted / ingest) if ingest else None},
            "b_load": _offered(otp, args.lanes_otp_rate),
            "c_load": _offered(transactional, args.lanes_transactional_rate),
            "settled": drained, "settle_seconds": round(time.perf_counter() - settled, 1)}


def _target(rig: ScratchGateway, tenant: Tenant) -> bench.Target:
    assert rig.gateway is not None
    return bench.Target(rig.gateway.address, (("authorization", f"Bearer {tenant.api_key}"),),
                        rig.run)


def _offered(load: Paced, rate: float) -> dict[str, Any]:
    return {"rate_per_second": rate, "offered": load.offered, "accepted": load.accepted,
            "errors": dict(load.errors)}


async def _paced(stub: sms_pb2_grpc.SmsServiceStub, target: bench.Target,
                 traffic_class: pb.TrafficClass, rate: float, seconds: float,
                 tally: Paced) -> None:
    """Open loop: requests leave on schedule whether or not earlier ones have returned."""
    if rate <= 0:
        return
    label = pb.TrafficClass.Name(traffic_class).removeprefix("TRAFFIC_CLASS_").lower()
    requests = bench._requests(target, label, int(rate * seconds))
    for request in requests:
        request.traffic_class = traffic_class

    async def send(request: pb.SendMessageRequest) -> None:
        try:
            await stub.SendMessage(request, metadata=target.metadata, timeout=30)
        except grpc.aio.AioRpcError as exc:
            tally.errors[exc.code().name] += 1
        else:
            tally.accepted += 1

    calls = []
    began = time.perf_counter()
    for index, request in enumerate(requests):
        delay = began + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        calls.append(asyncio.create_task(send(request)))
        tally.offered += 1
    await asyncio.gather(*calls)


async def _settle(url: str, seconds: float) -> bool:
    """Waits until nothing is QUEUED or SENDING (every message sent or final)."""
    deadline = time.monotonic() + seconds
    conn = await asyncpg.connect(url)
    try:
        while time.monotonic() < deadline:
            if not await conn.fetchval("SELECT count(*) FROM messages WHERE status IN (1, 2)"):
                return True
            await asyncio.sleep(1.0)
    finally:
        await conn.close()
    return False


_PER_TENANT = """
SELECT tenant_id::text AS tenant, count(*) AS accepted, count(sent_at) AS sent,
       count(*) FILTER (WHERE sent_at >= $1 AND sent_at <= $2) AS sent_in_window,
       min(sent_at) AS first_sent, max(sent_at) AS last_sent
FROM messages GROUP BY tenant_id
"""


async def _report(args: argparse.Namespace, url: str,
                  tenants: dict[str, Tenant]) -> dict[str, Any]:
    a, b, c = (tenants[name].tenant_id for name in TENANTS)
    conn = await asyncpg.connect(url)
    try:
        start, end = await conn.fetchrow(
            "SELECT min(created_at), max(created_at) FROM messages"
            " WHERE tenant_id = ANY($1::uuid[])", [b, c])
        rows = {r["tenant"]: r for r in await conn.fetch(_PER_TENANT, start, end)}
        latency = {tenant: await _latencies(conn, tenant) for tenant in (b, c)}
        unsent = {tenant: await _unsent(conn, tenant) for tenant in (a, b, c)}
    finally:
        await conn.close()
    window = (end - start).total_seconds() if start and end else 0.0
    in_window = {t: int(rows[t]["sent_in_window"]) if t in rows else 0 for t in (a, b, c)}
    total = sum(in_window.values())

    def rate(tenant: str) -> float:
        return in_window[tenant] / window if window > 0 else 0.0

    left = args.lanes_rate_cap - rate(b) - rate(c)
    b_p99, c_p99 = latency[b].get("p99_ms"), latency[c].get("p99_ms")
    targets = {
        "b_p99_within_200_ms": b_p99 is not None and b_p99 <= OTP_P99_MS and not unsent[b],
        "c_p99_within_500_ms": c_p99 is not None and c_p99 <= TRANSACTIONAL_P99_MS
        and not unsent[c],
        "a_drain_at_least_85_percent_of_capacity_left": window > 0
        and rate(a) >= DRAIN_SHARE * left}
    return {
        "window": {"start": _iso(start), "end": _iso(end), "seconds": round(window, 2)},
        "b_accept_to_sent": latency[b], "c_accept_to_sent": latency[c],
        "a_drain": {"in_window_per_second": round(rate(a), 1),
                    "overall_per_second": _overall(rows.get(a)),
                    "sent": int(rows[a]["sent"]) if a in rows else 0},
        "sent_per_second_in_window": {"a": round(rate(a), 1), "b": round(rate(b), 1),
                                      "c": round(rate(c), 1)},
        "share_of_sent_in_window": {
            name: round(in_window[t] / total, 4) if total else None
            for name, t in (("a", a), ("b", b), ("c", c))},
        "capacity_left_by_b_and_c_per_second": round(left, 1),
        "a_drain_share_of_capacity_left": round(rate(a) / left, 3) if left > 0 else None,
        "not_sent": {"a": unsent[a], "b": unsent[b], "c": unsent[c]},
        "targets": targets, "targets_hold": all(targets.values())}


async def _latencies(conn: asyncpg.Connection, tenant: str) -> dict[str, float]:
    samples = await conn.fetch(
        "SELECT EXTRACT(EPOCH FROM sent_at - created_at) * 1000 FROM messages"
        " WHERE tenant_id = $1::uuid AND sent_at IS NOT NULL", tenant)
    return bench._percentiles([float(row[0]) for row in samples])


async def _unsent(conn: asyncpg.Connection, tenant: str) -> dict[str, int]:
    """Messages never handed to the provider, by status (EXPIRED, still QUEUED, ...)."""
    rows = await conn.fetch("SELECT status, count(*) FROM messages WHERE tenant_id = $1::uuid"
                            " AND sent_at IS NULL GROUP BY status", tenant)
    return {MessageStatus(int(r[0])).name: int(r[1]) for r in rows}


def _overall(row: asyncpg.Record | None) -> float | None:
    """A's drain from its first SENT to its last."""
    if row is None or row["first_sent"] is None:
        return None
    span = (row["last_sent"] - row["first_sent"]).total_seconds()
    return round(int(row["sent"]) / span, 1) if span > 0 else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
