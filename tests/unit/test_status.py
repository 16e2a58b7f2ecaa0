"""The message state machine."""

from __future__ import annotations

import itertools

import pytest

from smsgw.domain.errors import InvalidTransition, SmsError
from smsgw.domain.status import (
    FINAL,
    INITIAL,
    TRANSITIONS,
    MessageStatus,
    can_transition,
    check_transition,
    sources_of,
)
from smsgw.proto import sms_pb2

S = MessageStatus

# The whole machine, written out independently of the module under test.
ALLOWED = frozenset({
    (S.QUEUED, S.SENDING), (S.QUEUED, S.CANCELED), (S.QUEUED, S.EXPIRED), (S.QUEUED, S.FAILED),
    (S.SENDING, S.SENT), (S.SENDING, S.QUEUED), (S.SENDING, S.FAILED),
    (S.SENDING, S.REJECTED), (S.SENDING, S.EXPIRED),
    (S.SENT, S.DELIVERED), (S.SENT, S.UNDELIVERED), (S.SENT, S.EXPIRED),
})
ALL_PAIRS = list(itertools.product(MessageStatus, MessageStatus))
DISALLOWED = [pair for pair in ALL_PAIRS if pair not in ALLOWED]


def _id(pair: tuple[MessageStatus, MessageStatus]) -> str:
    return f"{pair[0].name}->{pair[1].name}"


def test_status_numbers_match_the_protobuf_enum() -> None:
    for status in MessageStatus:
        assert sms_pb2.MessageStatus.Value(f"MESSAGE_STATUS_{status.name}") == status
    assert len(MessageStatus) == len(sms_pb2.MessageStatus.keys()) - 1  # minus UNSPECIFIED


def test_every_status_has_an_entry() -> None:
    assert set(TRANSITIONS) == set(MessageStatus)


@pytest.mark.parametrize("pair", sorted(ALLOWED), ids=_id)
def test_allowed_transitions_pass(pair: tuple[MessageStatus, MessageStatus]) -> None:
    current, new = pair
    assert can_transition(current, new) is True
    check_transition(current, new)


@pytest.mark.parametrize("pair", DISALLOWED, ids=_id)
def test_disallowed_transitions_raise(pair: tuple[MessageStatus, MessageStatus]) -> None:
    current, new = pair
    assert can_transition(current, new) is False
    with pytest.raises(InvalidTransition) as info:
        check_transition(current, new)
    assert info.value.message == f"a {current.name} message cannot become {new.name}"
    assert info.value.reason == "INVALID_TRANSITION"
    assert isinstance(info.value, SmsError)


def test_allowed_and_disallowed_cover_every_pair_once() -> None:
    assert len(ALLOWED) == 12
    assert len(ALLOWED) + len(DISALLOWED) == 81


@pytest.mark.parametrize("status", list(MessageStatus), ids=lambda s: s.name)
def test_no_status_transitions_to_itself(status: MessageStatus) -> None:
    assert not can_transition(status, status)


def test_final_set() -> None:
    assert frozenset({
        S.DELIVERED, S.UNDELIVERED, S.FAILED, S.CANCELED, S.EXPIRED, S.REJECTED,
    }) == FINAL


@pytest.mark.parametrize("status", sorted(FINAL), ids=lambda s: s.name)
def test_final_states_have_no_exits(status: MessageStatus) -> None:
    assert TRANSITIONS[status] == frozenset()
    assert not any(can_transition(status, new) for new in MessageStatus)


def test_every_state_reaches_a_final_state() -> None:
    for start in MessageStatus:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()] - seen:
                seen.add(nxt)
                frontier.append(nxt)
        assert seen & FINAL, start


def test_every_state_but_queued_is_reachable_from_queued() -> None:
    reachable = {new for _, new in ALLOWED}
    assert reachable == set(MessageStatus)
    assert S.QUEUED in sources_of(S.SENDING)


def test_messages_start_queued() -> None:
    assert INITIAL == S.QUEUED


def test_sources_of_reads_the_machine_it_is_given() -> None:
    other = {**TRANSITIONS, S.SENT: frozenset({S.DELIVERED, S.CANCELED})}
    assert sources_of(S.CANCELED, other) == frozenset({S.QUEUED, S.SENT})
    assert sources_of(S.EXPIRED, other) == frozenset({S.QUEUED, S.SENDING})
    assert sources_of(S.CANCELED) == frozenset({S.QUEUED})


@pytest.mark.parametrize(
    ("new", "sources"),
    [
        (S.QUEUED, {S.SENDING}),
        (S.SENDING, {S.QUEUED}),
        (S.SENT, {S.SENDING}),
        (S.DELIVERED, {S.SENT}),
        (S.UNDELIVERED, {S.SENT}),
        (S.FAILED, {S.QUEUED, S.SENDING}),
        (S.CANCELED, {S.QUEUED}),
        (S.EXPIRED, {S.QUEUED, S.SENDING, S.SENT}),
        (S.REJECTED, {S.SENDING}),
    ],
    ids=lambda v: v.name if isinstance(v, MessageStatus) else "",
)
def test_sources_of(new: MessageStatus, sources: set[MessageStatus]) -> None:
    assert sources_of(new) == frozenset(sources)
    assert sources_of(new) == frozenset(cur for cur, nxt in ALLOWED if nxt == new)
