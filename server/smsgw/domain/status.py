"""The message state machine: every allowed transition is declared here.

This declaration is what runs: the SQL guards are rendered from it when the
queries load (``adapters/postgres/queries.py``), not written out beside it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from smsgw.domain.errors import InvalidTransition


class MessageStatus(enum.IntEnum):
    """Numbered as in the protobuf enum, so conversion is a cast."""

    QUEUED = 1
    SENDING = 2
    SENT = 3
    DELIVERED = 4
    UNDELIVERED = 5
    FAILED = 6
    CANCELED = 7
    EXPIRED = 8
    REJECTED = 9


_S = MessageStatus

Transitions = Mapping[MessageStatus, frozenset[MessageStatus]]

# Every message is accepted in this state.
INITIAL: MessageStatus = _S.QUEUED

TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    _S.QUEUED: frozenset({_S.SENDING, _S.CANCELED, _S.EXPIRED, _S.FAILED}),
    # Back to QUEUED when a retryable provider error reschedules the message.
    _S.SENDING: frozenset({_S.SENT, _S.QUEUED, _S.FAILED, _S.REJECTED, _S.EXPIRED}),
    # EXPIRED: the provider gave up before a receipt said either way.
    _S.SENT: frozenset({_S.DELIVERED, _S.UNDELIVERED, _S.EXPIRED}),
    _S.DELIVERED: frozenset(),
    _S.UNDELIVERED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.EXPIRED: frozenset(),
    _S.REJECTED: frozenset(),
}

FINAL: frozenset[MessageStatus] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def can_transition(current: MessageStatus, new: MessageStatus) -> bool:
    return new in TRANSITIONS[current]


def check_transition(current: MessageStatus, new: MessageStatus) -> None:
    if not can_transition(current, new):
        raise InvalidTransition(f"a {current.name} message cannot become {new.name}")


def sources_of(new: MessageStatus, transitions: Transitions = TRANSITIONS
               ) -> frozenset[MessageStatus]:
    """States a message may be in for ``new`` to be allowed; used in SQL guards."""
    return frozenset(s for s, nxt in transitions.items() if new in nxt)
