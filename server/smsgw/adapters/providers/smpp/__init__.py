"""SMPP 3.4 (kind ``smpp``): the adapter and its codec.

``adapter`` sends through the binds ``session`` keeps up (on smpp34's session
engine), as ``config`` says; ``codec`` shapes a message into ``submit_sm``
parts and reads delivery receipts, pure and tested without sockets;
``status`` says what an SMSC's refusal means.
"""

from __future__ import annotations

from smsgw.adapters.providers.smpp.adapter import SmppProvider
from smsgw.adapters.providers.smpp.codec import Concatenation, IdFormat
from smsgw.adapters.providers.smpp.config import SmppConfig

__all__ = ["Concatenation", "IdFormat", "SmppConfig", "SmppProvider"]
