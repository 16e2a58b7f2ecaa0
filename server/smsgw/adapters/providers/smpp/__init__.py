"""SMPP 3.4 (kind ``smpp``): the adapter and its codec.

``adapter`` keeps binds to the SMSC (on smpp34's session engine) and sends
through them; ``codec`` shapes a message into ``submit_sm`` parts and reads
delivery receipts, pure and tested without sockets.
"""

from __future__ import annotations

from smsgw.adapters.providers.smpp.adapter import SmppConfig, SmppProvider
from smsgw.adapters.providers.smpp.codec import Concatenation, IdFormat

__all__ = ["Concatenation", "IdFormat", "SmppConfig", "SmppProvider"]
