"""``smsgw bench`` and the fault drills: measuring a gateway, outside the production package.

- ``gateway``: the measurements of a running gateway over gRPC (and the
  dispatch to the other modes);
- ``smpp``: ``--mode smpp``, a backlog through the SMPP adapter to the SMSC simulator;
- ``faults``: ``--mode faults``, the store fault drills repeated, with totals;
- ``relay``: ``--mode relay-drain``, a backlog drained by the relay alone (A/B across builds);
- ``drills``: one fault drill (a gateway on private stores, load, a fault, the audit).

``smsgw bench`` imports this package only when it runs.
"""

from __future__ import annotations

from smsgw_bench.gateway import add_arguments, run

__all__ = ["add_arguments", "run"]
