"""Provider adapters: each implements smsgw.ports.SendPort and nothing else.

One package per carrier kind, holding its adapter and what only that kind
needs: ``smpp`` (the adapter and the SMPP codec) and ``http_carrier`` (the
adapter and the callback signature). The carrier simulator, the default
provider, lives outside the production package, in ``smsgw_simulators``.
"""
