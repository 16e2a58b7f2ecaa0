"""Stand-ins for the gateway's external peers, for the default set-up, tests and benchmarks.

Not part of the production package ``smsgw``: ``smsgw`` imports them only
when one is asked for (the carrier simulator is the default provider).

- ``carrier``: the carrier simulator, an in-process provider adapter (kind ``simulator``);
- ``smsc``: an SMPP 3.4 SMSC, run as its own process (``python -m smsgw_simulators.smsc``);
- ``fake_carrier``: a Twilio-style HTTP carrier on a real socket.
"""
