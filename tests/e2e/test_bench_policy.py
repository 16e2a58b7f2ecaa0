"""``smsgw bench --mode lanes``, ``schedule`` and ``relay-drain`` run, report, leave nothing behind.

Smoke runs with tiny parameters: the JSON has its keys and sane counts, and
the scratch database the bench created is gone afterwards. The timings are
the bench's business (docs/benchmarks.md), never asserted here.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import asyncpg
import pytest

pytestmark = pytest.mark.e2e


async def bench(stores: tuple[str, str], *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_")}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "smsgw", "bench", "--database-url", stores[0],
                         "--redis-url", stores[1], *args],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


async def scratch_databases(admin_url: str, label: str) -> list[str]:
    conn = await asyncpg.connect(admin_url)
    try:
        return [r[0] for r in await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", f"smsgw_bench_{label}_%")]
    finally:
        await conn.close()


def assert_percentiles(figures: dict[str, float]) -> None:
    assert set(figures) == {"p50_ms", "p95_ms", "p99_ms", "max_ms"}, figures
    assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"], figures


async def test_the_lanes_bench_reports_latency_shares_and_targets(stores):
    before = await scratch_databases(stores[0], "lanes")
    report = await bench(stores, "--mode", "lanes", "--lanes-marketing", "2000",
                         "--lanes-seconds", "5", "--lanes-rate-cap", "200",
                         "--lanes-settle-seconds", "120")
    assert report["modes"] == ["lanes"]
    lanes = report["lanes"]
    assert lanes["rate_cap"] == 200
    assert lanes["a_ingest"]["accepted"] == 2000 and lanes["a_ingest"]["errors"] == 0
    assert lanes["b_load"]["accepted"] == lanes["b_load"]["offered"] == 100
    assert lanes["c_load"]["accepted"] == lanes["c_load"]["offered"] == 250
    assert lanes["settled"] is True
    assert lanes["not_sent"] == {"a": {}, "b": {}, "c": {}}
    assert 4 < lanes["window"]["seconds"] < 6
    assert_percentiles(lanes["b_accept_to_sent"])
    assert_percentiles(lanes["c_accept_to_sent"])
    assert lanes["a_drain"]["sent"] == 2000 and lanes["a_drain"]["overall_per_second"] > 0
    shares = lanes["share_of_sent_in_window"]
    assert set(shares) == {"a", "b", "c"} and abs(sum(shares.values()) - 1) < 0.01, shares
    assert set(lanes["sent_per_second_in_window"]) == {"a", "b", "c"}
    assert 0 < lanes["capacity_left_by_b_and_c_per_second"] <= 200
    assert set(lanes["targets"]) == {"b_p99_within_200_ms", "c_p99_within_500_ms",
                                     "a_drain_at_least_85_percent_of_capacity_left"}
    assert lanes["targets_hold"] == all(lanes["targets"].values())
    assert await scratch_databases(stores[0], "lanes") == before  # dropped at the end


async def test_the_schedule_bench_reports_when_scheduled_messages_left(stores):
    before = await scratch_databases(stores[0], "schedule")
    report = await bench(stores, "--mode", "schedule", "--schedule-count", "200",
                         "--schedule-ahead", "5", "--schedule-settle-seconds", "60")
    assert report["modes"] == ["schedule"]
    scheduled = report["schedule"]
    assert scheduled["accepted"] == scheduled["count"] == 200 and scheduled["errors"] == 0
    assert scheduled["submitted_before_send_time"] is True
    assert scheduled["stored_send_time"] == 200
    assert scheduled["all_sent"] is True and scheduled["sent"] == 200
    assert scheduled["sent_before_send_time"] == 0
    first, last = scheduled["send_time_to_first_sent_ms"], scheduled["send_time_to_last_sent_ms"]
    assert 0 <= first <= last, scheduled
    assert scheduled["first_to_last_sent_seconds"] >= 0
    assert await scratch_databases(stores[0], "schedule") == before


async def test_the_relay_drain_bench_reports_the_drain_and_its_cpu(stores):
    before = await scratch_databases(stores[0], "relay")
    report = await bench(stores, "--mode", "relay-drain", "--drain-count", "300",
                         "--drain-latency-ms", "2")
    assert report["modes"] == ["relay-drain"]
    drain = report["relay-drain"]
    assert set(drain) == {"messages", "ingest_errors", "ingest_seconds", "outbox_left", "sent",
                          "drain_seconds", "msg_per_s", "polled_seconds", "cpu_seconds",
                          "server", "migrations", "simulator_latency_ms"}, drain
    assert drain["messages"] == drain["sent"] == 300 and drain["ingest_errors"] == 0
    assert drain["outbox_left"] == 0
    assert drain["drain_seconds"] >= 0 and drain["polled_seconds"] >= 0
    # One batch may leave in one write-back: no span, no rate.
    assert drain["msg_per_s"] is None or drain["msg_per_s"] > 0
    assert set(drain["cpu_seconds"]) == {"gateway", "postgres_backends"}
    assert drain["server"] == "this build" and drain["migrations"] > 0
    assert drain["simulator_latency_ms"] == 2
    assert await scratch_databases(stores[0], "relay") == before
