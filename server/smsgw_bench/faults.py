"""``smsgw bench --mode faults``: the store fault drills, repeated, with totals.

The Postgres restart is repeated (``--fault-runs``, default 5) because the
failure it guards against was a race: a pooled connection whose session the
server had just ended. Each run starts its own gateway on its own Postgres
and Redis (see smsgw_bench.drills), so no running gateway is needed.
"""

from __future__ import annotations

import argparse
from typing import Any

from smsgw_bench.drills.faults import FAULTS, DrillPlan, run_drill
from smsgw_bench.drills.load import LoadShape


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fault-runs", type=int, default=5,
                        help="how many times the Postgres restart is repeated (faults mode)")
    parser.add_argument("--faults", default=",".join(FAULTS),
                        help="which drills to run, comma-separated (faults mode)")
    parser.add_argument("--fault-gap", type=float, default=20.0,
                        help="seconds a stopped Postgres or killed Redis stays away")
    parser.add_argument("--fault-rate", type=float, default=300.0,
                        help="unary msg/s offered during a drill (bulk offers as many)")


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    shape = LoadShape(unary_per_second=args.fault_rate, bulk_per_second=args.fault_rate)
    runs: list[dict[str, Any]] = []
    for fault in args.faults.split(","):
        repeats = args.fault_runs if fault == "postgres-restart" else 1
        for _ in range(repeats):
            runs.append(await run_drill(DrillPlan(fault, shape=shape,
                                                  gap_seconds=args.fault_gap)))
    return {"runs": [_summary(run) for run in runs], "totals": _totals(runs)}


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    readiness = run["readiness"]
    return {"fault": run["fault"], "accepted": run["accepted"], "missing": run["missing"],
            "not_final": run["not_final"], "sent_twice": run["handed_to_carrier_twice"],
            "errors": run["load"]["errors"], "max_attempts": run["max_attempts"],
            "claimed_ready_in_gap": readiness["claimed_ready_in_gap"],
            "ready_again_after_seconds": readiness["ready_again_after_seconds"],
            "loops_down_after": run["loops_down"], "loop_restarts": sum(
                run["loop_restarts"].values()), "settle_seconds": run["settle_seconds"]}


def _totals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    bad_errors = sum(run["load"]["errors_other_than_unavailable"] for run in runs)
    return {"runs": len(runs), "accepted": sum(r["accepted"] for r in runs),
            "missing": sum(r["missing"] for r in runs),
            "stuck": sum(r["not_final"] for r in runs),
            "sent_twice": sum(r["handed_to_carrier_twice"] for r in runs),
            "errors_other_than_unavailable": bad_errors,
            "runs_with_a_loop_down_after": sum(bool(r["loops_down"]) for r in runs),
            "runs_not_ready_at_end": sum(not r["readiness"]["ready_at_end"] for r in runs)}
