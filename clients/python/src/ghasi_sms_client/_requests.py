"""Building requests: shared by the async and the sync client."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from ghasi_sms_client._proto import sms_pb2 as pb

SendItem = pb.SendMessageRequest | Mapping[str, Any]


def send_request(to: str, body: str, *, sender: str = "", client_reference: str = "",
                 metadata: Mapping[str, str] | None = None,
                 idempotency_key: str | None = None) -> pb.SendMessageRequest:
    """A request with an idempotency key fixed now, so every retry reuses it."""
    return pb.SendMessageRequest(
        to=to, body=body, sender=sender, client_reference=client_reference,
        metadata=dict(metadata or {}), idempotency_key=idempotency_key or str(uuid.uuid4()))


def as_request(item: SendItem) -> pb.SendMessageRequest:
    if isinstance(item, pb.SendMessageRequest):
        if item.idempotency_key:
            return item
        keyed = pb.SendMessageRequest()
        keyed.CopyFrom(item)
        keyed.idempotency_key = str(uuid.uuid4())
        return keyed
    return send_request(**dict(item))


def auth_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),)
