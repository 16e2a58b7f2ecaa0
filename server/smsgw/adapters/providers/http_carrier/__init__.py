"""The Twilio-style HTTP carrier (kind ``http``): the adapter and its callback signature.

``adapter`` sends by REST and turns signed status callbacks into receipts;
``signing`` is the carrier's HMAC over a callback, checked before a callback
may touch a message.
"""

from __future__ import annotations

from smsgw.adapters.providers.http_carrier.adapter import HttpCarrierConfig, HttpCarrierProvider

__all__ = ["HttpCarrierConfig", "HttpCarrierProvider"]
