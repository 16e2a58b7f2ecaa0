"""One fault drill: a real ``smsgw serve`` on private stores, load, a fault, and the audit.

The audit is what a platform team would check after an incident: every
message a client was told was accepted exists and reached a final state
(receipts kept flowing), none was handed to the carrier twice (the carrier
simulator counts repeats of our message id, as a carrier's logs would), no
caller saw INTERNAL, readiness said "not ready" while the store was away and
"ready" again after, and the metrics recovered (every loop up, the outbox
depth gauge sampled again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from smsgw.adapters.postgres.database import Database
from smsgw.adapters.postgres.tenants import TenantDirectory
from smsgw.domain.status import FINAL, MessageStatus
from smsgw_bench.drills.load import Load, LoadShape
from smsgw_bench.drills.stores import PrivatePostgres, PrivateRedis, free_port

FAULTS = ("postgres-restart", "postgres-stop", "redis-kill")
DATABASE = "smsgw"


@dataclass(frozen=True, slots=True)
class DrillPlan:
    fault: str
    shape: LoadShape = field(default_factory=LoadShape)
    before_seconds: float = 5.0  # load before the fault
    gap_seconds: float = 20.0  # how long a stopped or killed store stays away
    after_seconds: float = 5.0  # load after the store is back
    settle_seconds: float = 120.0  # at most this long for every message to end
    provider_rate: float = 2000.0  # the simulator's shared token bucket (Redis)


@dataclass
class Sample:
    at: float
    ready: bool  # /readyz answered 200
    serving: bool  # gRPC health said SERVING


@dataclass
class Gateway:
    """``smsgw serve`` as its own process, with its log in a file."""

    env: dict[str, str]
    log: Path
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    # False: no SMSGW_* variable of this process reaches the gateway, only ``env``'s
    # (one set here, SMSGW_PROVIDERS say, would override the gateway's config file).
    inherit_settings: bool = True

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    async def start(self) -> None:
        """Starts the gateway and waits until it serves. A free port can be taken by
        another process between our probe and the gateway's bind: then new ports."""
        for _ in range(3):
            logged = self.log.stat().st_size if self.log.exists() else 0
            if await self._started():
                return
            tail = self.log.read_bytes()[logged:].decode(errors="replace")
            if "address already in use" not in tail:
                break
            self.grpc_port, self.http_port = free_port(), free_port()
        raise RuntimeError(f"gateway did not start:\n{self.log.read_text()[-3000:]}")

    async def _started(self) -> bool:
        base = {k: v for k, v in os.environ.items()
                if self.inherit_settings or not k.startswith("SMSGW_")}
        env = {**base, **self.env, "SMSGW_GRPC_ADDRESS": self.address,
               "SMSGW_HTTP_ADDRESS": f"127.0.0.1:{self.http_port}"}
        with self.log.open("ab") as out:  # a gateway restarted appends to its log
            self.process = subprocess.Popen(  # noqa: ASYNC220 - outlives this call
                [sys.executable, "-m", "smsgw", "serve"], env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while not await self.serving():
            if self.process.poll() is not None or time.monotonic() > deadline:
                if self.process.poll() is None:
                    self.process.kill()
                    await asyncio.to_thread(self.process.wait)
                return False
            await asyncio.sleep(0.1)
        return True

    async def serving(self) -> bool:
        async with grpc.aio.insecure_channel(self.address) as channel:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1)
                return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
        return False

    def http(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode()
        except OSError:
            return 0, ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def run_drill(plan: DrillPlan) -> dict[str, Any]:
    """Runs one drill on stores of its own and returns the audit as plain data."""
    if plan.fault not in FAULTS:
        raise ValueError(f"unknown fault {plan.fault!r}; one of {', '.join(FAULTS)}")
    postgres, redis = PrivatePostgres(), PrivateRedis()
    gateway: Gateway | None = None
    try:
        await asyncio.to_thread(postgres.init)
        await asyncio.to_thread(redis.start)
        await _create_database(postgres.url)
        gateway = Gateway(_environment(plan, postgres, redis), postgres.root / "gateway.log")
        await gateway.start()
        return await _drill(plan, gateway, postgres, redis)
    finally:
        if gateway is not None:
            await asyncio.to_thread(gateway.stop)
        await asyncio.to_thread(redis.destroy)
        await asyncio.to_thread(postgres.destroy)


def _environment(plan: DrillPlan, postgres: PrivatePostgres,
                 redis: PrivateRedis) -> dict[str, str]:
    provider = {"name": "simulator", "kind": "simulator", "latency_ms": 5,
                "receipt_delay_ms": 50, "rate_per_second": plan.provider_rate,
                "max_in_flight": 500}
    return {"SMSGW_DATABASE_URL": _database_url(postgres.url),
            "SMSGW_REDIS_URL": redis.url, "SMSGW_DATA_DIR": str(postgres.root / "gateway"),
            "SMSGW_REST_ENABLED": "false", "SMSGW_LOG_LEVEL": "WARNING",
            "SMSGW_PROVIDERS": json.dumps([provider]), "SMSGW_RELAY_POLL_SECONDS": "0.2",
            "SMSGW_DB_POOL_SIZE": "10"}


def _database_url(server_url: str) -> str:
    return server_url.rsplit("/", 1)[0] + f"/{DATABASE}"


async def _create_database(server_url: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()


async def _drill(plan: DrillPlan, gateway: Gateway, postgres: PrivatePostgres,
                 redis: PrivateRedis) -> dict[str, Any]:
    key = await _tenant_key(_database_url(postgres.url))
    load = Load(gateway.address, key, plan.shape)
    samples: list[Sample] = []
    probe = asyncio.create_task(_probe(gateway, samples))
    started = time.monotonic()
    offered = asyncio.create_task(load.run(
        plan.before_seconds + _gap(plan) + plan.after_seconds))
    try:
        await asyncio.sleep(plan.before_seconds)
        fault_at = time.monotonic()
        restore_at = await _inflict(plan, postgres, redis)
        back_at = time.monotonic()
        await offered
        load_done = time.monotonic()
        settled = await _settle(_database_url(postgres.url), load.tally.accepted,
                                plan.settle_seconds)
        settle_seconds = time.monotonic() - load_done
        after = await _after(gateway)  # the probe keeps sampling meanwhile
    finally:
        offered.cancel()
        probe.cancel()
        await load.close()
    return {
        "fault": plan.fault, "fault_seconds": round(back_at - fault_at, 2),
        "load": load.tally.summary(), "settle_seconds": round(settle_seconds, 1),
        **settled, **after,
        "readiness": _readiness(samples, fault_at - started, restore_at - started,
                                back_at - started, plan.fault != "postgres-restart"),
        "log": _log_findings(gateway.log),
    }


def _gap(plan: DrillPlan) -> float:
    return 1.0 if plan.fault == "postgres-restart" else plan.gap_seconds


async def _inflict(plan: DrillPlan, postgres: PrivatePostgres, redis: PrivateRedis) -> float:
    """Takes the store away and brings it back; returns when its restart began."""
    if plan.fault == "postgres-restart":
        restore_at = time.monotonic()
        await asyncio.to_thread(postgres.restart)
        await asyncio.sleep(_gap(plan))
        return restore_at
    stop, start = ((postgres.stop, postgres.start) if plan.fault == "postgres-stop"
                   else (redis.kill, redis.start))
    await asyncio.to_thread(stop)
    await asyncio.sleep(plan.gap_seconds)
    restore_at = time.monotonic()
    await asyncio.to_thread(start)
    return restore_at


async def _tenant_key(database_url: str) -> str:
    database = Database(database_url, pool_size=1)
    await database.open()
    try:
        _tenant, key = await TenantDirectory(database).create("drill", ("send",))
    finally:
        await database.close()
    return key


async def _probe(gateway: Gateway, samples: list[Sample]) -> None:
    """Samples /readyz and gRPC health four times a second until cancelled."""
    started = time.monotonic()
    while True:
        try:
            code, _ = await asyncio.to_thread(gateway.http, "/readyz")
            serving = await gateway.serving()
        except Exception:  # a failed probe is a "not ready" sample
            code, serving = 0, False
        samples.append(Sample(time.monotonic() - started, code == 200, serving))
        await asyncio.sleep(0.25)


def _readiness(samples: list[Sample], fault_at: float, restore_at: float, back_at: float,
               expect_unready: bool) -> dict[str, Any]:
    """Whether readiness told the truth: unready while the store was away (after a
    detection allowance of two seconds), ready again once it was back."""
    gap = [s for s in samples if fault_at + 2 <= s.at <= restore_at]
    after = [s for s in samples if s.at > back_at]
    recovered = next((s.at - back_at for s in after if s.ready and s.serving), None)
    return {"samples_in_gap": len(gap),
            "claimed_ready_in_gap": sum(s.ready for s in gap) if expect_unready else None,
            "claimed_serving_in_gap": sum(s.serving for s in gap) if expect_unready else None,
            "ready_again_after_seconds": None if recovered is None else round(recovered, 2),
            "ready_at_end": bool(samples and samples[-1].ready and samples[-1].serving)}


async def _settle(database_url: str, accepted: set[str], seconds: float) -> dict[str, Any]:
    """Waits until every accepted message is final (or the time is up); counts them."""
    ids = list(accepted)
    deadline = time.monotonic() + seconds
    while True:
        counts, max_attempts = await _statuses(database_url, ids)
        final = sum(n for status, n in counts.items() if status in FINAL)
        if final == len(ids) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    present = sum(counts.values())
    return {"accepted": len(ids), "missing": len(ids) - present,
            "not_final": present - final, "max_attempts": max_attempts,
            "statuses": {status.name: n for status, n in sorted(counts.items())}}


async def _statuses(database_url: str, ids: list[str]) -> tuple[dict[MessageStatus, int], int]:
    """Messages by status, and the most attempts any of them took."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status, count(*), max(attempts) FROM messages "
                                "WHERE id = ANY($1::uuid[]) GROUP BY status", ids)
    finally:
        await conn.close()
    return ({MessageStatus(r[0]): int(r[1]) for r in rows},
            max((int(r[2]) for r in rows), default=0))


async def _after(gateway: Gateway) -> dict[str, Any]:
    """The metrics once the dust settled: one depth-poller interval after the drain."""
    await asyncio.sleep(6)
    _, text = await asyncio.to_thread(gateway.http, "/metrics")
    loops = {m["loop"]: value for m, value in _series(text, "sms_loop_up")}
    duplicates = sum(v for m, v in _series(text, "sms_simulator_messages_total")
                     if m.get("result") == "duplicate")
    depth = [v for _, v in _series(text, "sms_outbox_depth")]
    restarts = {m["loop"]: v for m, v in _series(text, "sms_loop_restarts_total")}
    deferred = sum(v for m, v in _series(text, "sms_dispatch_total")
                   if m.get("outcome") == "deferred")
    code, readyz = await asyncio.to_thread(gateway.http, "/readyz")
    return {"readyz_at_end": f"{code} {readyz}".strip(),
            "handed_to_carrier_twice": int(duplicates), "loops_down": sorted(
        name for name, up in loops.items() if up != 1), "loop_restarts": restarts,
        "outbox_depth_gauge": depth[0] if depth else None, "deferred_sends": int(deferred)}


_LINE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def _series(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    found = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and match.group(1) == name:
            found.append((dict(_LABEL.findall(match.group(2) or "")), float(match.group(3))))
    return found


def _log_findings(log: Path) -> dict[str, int]:
    """What the gateway wrote that an operator would have to worry about."""
    text = log.read_text(errors="replace")
    return {"lines": text.count("\n"),
            "task_exception_never_retrieved": text.count("Task exception was never retrieved"),
            "errors": text.count('"level": "error"'),
            "critical": text.count('"level": "critical"')}
