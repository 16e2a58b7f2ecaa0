"""``smsgw bench`` and the fault drills: measuring a gateway, outside the production package.

- ``gateway``: the measurements of a running gateway over gRPC (and the
  dispatch to the smpp and faults modes);
- ``smpp``: ``--mode smpp``, a backlog through the SMPP adapter to the SMSC simulator;
- ``faults``: ``--mode faults``, the store fault drills repeated, with totals;
- ``relay``: ``--mode relay-drain``, a backlog drained by the relay alone (A/B across builds);
- ``drills``: one fault drill (a gateway on private stores, load, a fault, the audit);
- ``lanes``: ``--mode lanes``, OTP and transactional latency behind a marketing backlog;
- ``schedule``: ``--mode schedule``, scheduled messages leaving at their send_time;
- ``scratch``: the gateway the lanes, schedule and relay-drain modes start on a
  scratch database.

``smsgw bench`` imports this package only when it runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from smsgw_bench import gateway, lanes, relay, schedule, scratch

# Modes that start a gateway of their own: no running gateway, no API key.
SELF_STARTED = {"lanes": lanes.measure, "schedule": schedule.measure,
                "relay-drain": relay.measure}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    gateway.add_arguments(parser)
    scratch.add_arguments(parser)
    relay.add_arguments(parser)
    lanes.add_arguments(parser)
    schedule.add_arguments(parser)


async def run(args: argparse.Namespace, address: str, api_key: str) -> dict[str, Any]:
    measure = SELF_STARTED.get(args.mode)
    if measure is not None:
        return {"modes": [args.mode], args.mode: await measure(args)}
    return await gateway.run(args, address, api_key)


__all__ = ["SELF_STARTED", "add_arguments", "run"]
