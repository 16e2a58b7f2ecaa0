"""A store going away is a normal day: Postgres restarted, Postgres stopped, Redis killed.

Each test runs a real ``smsgw serve`` on a Postgres cluster and a
redis-server of its own (the machine's shared servers are never touched),
offers unary and bulk load, inflicts the fault while the load runs, and
audits the aftermath (see smsgw_bench.drills.faults). ``smsgw bench --mode
faults`` repeats the Postgres restart many times; this is the bounded sample.
"""

from __future__ import annotations

from typing import Any

import pytest

from smsgw_bench.drills.faults import DrillPlan, run_drill
from smsgw_bench.drills.load import LoadShape

LOAD = LoadShape(unary_per_second=200, bulk_per_second=200, chunk=100)
RETRYABLE = {"UNAVAILABLE", "item UNAVAILABLE"}


def assert_nothing_lost_or_doubled(report: dict[str, Any]) -> None:
    load = report["load"]
    assert report["accepted"] > 1000, report
    assert report["missing"] == 0 and report["not_final"] == 0, report
    assert report["statuses"] == {"DELIVERED": report["accepted"]}, report
    assert report["handed_to_carrier_twice"] == 0, report
    assert set(load["errors"]) <= RETRYABLE, load  # never INTERNAL, UNKNOWN or a hang
    assert load["unavailable_without_retry_info"] == 0, load
    assert load["gave_up"] == 0 and load["hung_streams"] == 0, load


def assert_recovered(report: dict[str, Any]) -> None:
    assert report["readiness"]["ready_at_end"], report["readiness"]
    assert report["loops_down"] == [], report["loop_restarts"]
    assert report["outbox_depth_gauge"] == 0, report
    assert report["log"]["task_exception_never_retrieved"] == 0, report["log"]
    assert report["log"]["errors"] == 0, report["log"]  # loop bugs log at error


def assert_honest_while_away(report: dict[str, Any]) -> None:
    readiness = report["readiness"]
    assert readiness["samples_in_gap"] > 10, readiness
    assert readiness["claimed_ready_in_gap"] == 0, readiness
    assert readiness["claimed_serving_in_gap"] == 0, readiness


async def test_a_postgres_restart_under_load() -> None:
    report = await run_drill(DrillPlan("postgres-restart", shape=LOAD))
    assert_nothing_lost_or_doubled(report)
    assert_recovered(report)
    # The restart really cut the background loops off, and they came back.
    assert report["loop_restarts"]["relay-claim"] >= 1, report["loop_restarts"]


async def test_postgres_stopped_for_twenty_seconds_under_load() -> None:
    report = await run_drill(DrillPlan("postgres-stop", shape=LOAD, gap_seconds=20))
    assert_nothing_lost_or_doubled(report)
    assert_recovered(report)
    assert_honest_while_away(report)
    assert report["load"]["errors"].get("UNAVAILABLE", 0) > 0  # callers were told to retry


@pytest.mark.parametrize("gap", [20])
async def test_redis_killed_for_twenty_seconds_with_a_provider_rate_limit(gap: int) -> None:
    report = await run_drill(DrillPlan("redis-kill", shape=LOAD, gap_seconds=gap,
                                       provider_rate=2000))
    assert_nothing_lost_or_doubled(report)
    assert_recovered(report)
    assert_honest_while_away(report)
    # The shared bucket was out of reach: sends waited (deferred), attempts were not spent.
    assert report["deferred_sends"] > 0, report
    assert report["max_attempts"] == 1, report
    assert report["load"]["errors"] == {}, report["load"]  # idempotency fell back to Postgres
