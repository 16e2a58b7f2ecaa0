"""The statements that change a message's status do what the declared machine allows.

Every statement is run against a message in every status (and, where the new
status is an input, towards every status), and must move exactly the ones
``TRANSITIONS`` allows, each with one event. The same runs again with the
queries rendered from a *different* machine, and must follow that one
instead: the guards are the declaration, not numbers written beside it.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from smsgw.adapters.postgres import queries
from smsgw.domain.lanes import Lane
from smsgw.domain.status import TRANSITIONS, MessageStatus, Transitions, sources_of

pytestmark = pytest.mark.integration
S = MessageStatus
FINALS: Transitions = {s: frozenset() for s in TRANSITIONS if not TRANSITIONS[s]}
# A machine unlike the real one in every statement's guard.
CHANGED: Transitions = {
    **FINALS,
    S.QUEUED: frozenset({S.EXPIRED, S.FAILED}),
    S.SENDING: frozenset({S.SENT, S.QUEUED, S.FAILED, S.EXPIRED, S.CANCELED, S.DELIVERED}),
    S.SENT: frozenset({S.DELIVERED, S.FAILED, S.SENDING}),
}
MACHINES = pytest.mark.parametrize("machine", [TRANSITIONS, CHANGED], ids=["declared", "changed"])
PROVIDER = "carrier"


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


async def _message(conn: asyncpg.Connection, tenant: uuid.UUID, status: MessageStatus,
                   outbox: str | None = None) -> uuid.UUID:
    """A message in ``status``, SENT an hour ago; with ``outbox`` an outbox row,
    due now ("") or leased by that relay."""
    message_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO messages (id, tenant_id, idempotency_key, fingerprint, to_number, body,"
        " encoding, segments, status, provider, provider_message_id, sent_at, created_at,"
        " updated_at) VALUES ($1, $2, $3, '', '+15550001111', 'hi', 1, 1, $4, $5, $3,"
        " now() - interval '1 hour', now(), now())",
        message_id, tenant, str(message_id), int(status), PROVIDER)
    if outbox is not None:
        await conn.execute(
            "INSERT INTO outbox (message_id, tenant_id, lane, due_at, lease_owner) VALUES ($1,"
            " $3, 1, CASE WHEN $2 = '' THEN now() ELSE now() + interval '1 hour' END,"
            " NULLIF($2, ''))",
            message_id, outbox, tenant)
    return message_id


async def _tenant(conn: asyncpg.Connection) -> uuid.UUID:
    tenant = uuid.uuid4()
    await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant, str(tenant))
    return tenant


async def _state(conn: asyncpg.Connection, message_id: uuid.UUID
                 ) -> tuple[MessageStatus, list[tuple[int, int | None]]]:
    status = await conn.fetchval("SELECT status FROM messages WHERE id = $1", message_id)
    events = await conn.fetch(
        "SELECT status, previous_status FROM message_events WHERE message_id = $1 ORDER BY id",
        message_id)
    return MessageStatus(status), [(e["status"], e["previous_status"]) for e in events]


async def _assert_moved(conn: asyncpg.Connection, message_id: uuid.UUID, old: MessageStatus,
                        new: MessageStatus, allowed: bool) -> None:
    status, events = await _state(conn, message_id)
    if allowed:
        assert (status, events) == (new, [(new, old)]), f"{old.name} -> {new.name}"
    else:
        assert (status, events) == (old, []), f"{old.name} -> {new.name} is not allowed"


@MACHINES
async def test_cancel_moves_what_may_become_canceled(conn, machine: Transitions) -> None:
    sql = queries.build("messages", machine)["cancel_message"]
    tenant = await _tenant(conn)
    for old in MessageStatus:
        message_id = await _message(conn, tenant, old, outbox="")
        row = await conn.fetchrow(sql, tenant, message_id)
        allowed = old in sources_of(S.CANCELED, machine)
        assert (row is not None) == allowed, old.name
        await _assert_moved(conn, message_id, old, S.CANCELED, allowed)


def _everything_of(tenant: uuid.UUID) -> tuple[list[int], list[uuid.UUID], list[int], str,
                                                float, int]:
    """claim_due's arguments: picks (lanes, tenants, counts) of up to 100 of the tenant's
    due rows in every lane, owner, lease, the picks' total."""
    return ([int(lane) for lane in Lane], [tenant] * len(Lane), [100] * len(Lane), "r", 60.0,
            100 * len(Lane))


@MACHINES
async def test_a_claim_takes_what_may_become_sending(conn, machine: Transitions) -> None:
    sql = queries.build("outbox", machine)["claim_due"]
    tenant = await _tenant(conn)
    ids = {old: await _message(conn, tenant, old, outbox="") for old in MessageStatus}
    claimed = {row["id"]: row["previous_status"]
               for row in await conn.fetch(sql, *_everything_of(tenant))}

    may = sources_of(S.SENDING, machine)
    # Still SENDING: a lapsed lease, taken over without a transition or event.
    assert set(claimed) == {ids[s] for s in may | {S.SENDING}}
    for old, message_id in ids.items():
        if old == S.SENDING:
            assert await _state(conn, message_id) == (S.SENDING, [])
        else:
            await _assert_moved(conn, message_id, old, S.SENDING, old in may)


@MACHINES
async def test_an_outcome_moves_a_sending_message_where_the_machine_allows(
        conn, machine: Transitions) -> None:
    sql = queries.build("outbox", machine)["record_outcomes"]
    tenant = await _tenant(conn)
    pairs = {(old, new): await _message(conn, tenant, old, outbox="r")
             for old, new in itertools.product(MessageStatus, MessageStatus)}
    outcomes = list(pairs.items())
    n = len(outcomes)
    done = await conn.fetch(
        sql, "r", [mid for _, mid in outcomes], [int(new) for (_, new), _ in outcomes],
        [PROVIDER] * n, ["ref"] * n, [""] * n, [""] * n,
        [1000 if new == S.QUEUED else None for (_, new), _ in outcomes], [""] * n,
        [False] * n, [False] * n, [None] * n)

    assert len(done) == n  # every leased row is settled; only allowed ones move
    for (old, new), message_id in outcomes:
        allowed = old == S.SENDING and new in machine[S.SENDING]
        await _assert_moved(conn, message_id, old, new, allowed)


@MACHINES
async def test_a_receipt_moves_a_sent_message_where_the_machine_allows(
        conn, machine: Transitions) -> None:
    sql = queries.build("receipts", machine)["apply_receipts"]
    tenant = await _tenant(conn)
    pairs = {(old, new): await _message(conn, tenant, old)
             for old, new in itertools.product(MessageStatus, MessageStatus)}
    items = list(pairs.items())
    n = len(items)
    matched = await conn.fetch(sql, PROVIDER, [str(mid) for _, mid in items],
                               [int(new) for (_, new), _ in items], [""] * n, [""] * n, False)

    allowed = {mid for (old, new), mid in items if old == S.SENT and new in machine[S.SENT]}
    assert {uuid.UUID(row[0]) for row in matched} == allowed
    for (old, new), message_id in items:
        await _assert_moved(conn, message_id, old, new, message_id in allowed)


@MACHINES
async def test_the_receipt_timeout_expires_sent_messages_if_the_machine_allows(
        conn, machine: Transitions) -> None:
    sql = queries.build("receipts", machine)["expire_unreceipted"]
    tenant = await _tenant(conn)
    ids = {old: await _message(conn, tenant, old) for old in MessageStatus}
    expired = await conn.fetchval(sql, 60.0, 100)

    allowed = S.EXPIRED in machine[S.SENT]
    assert expired == (1 if allowed else 0)
    for old, message_id in ids.items():
        await _assert_moved(conn, message_id, old, S.EXPIRED, allowed and old == S.SENT)


@MACHINES
async def test_the_validity_sweep_expires_what_may_become_expired_and_no_relay_holds(
        conn, machine: Transitions) -> None:
    sql = queries.build("outbox", machine)["expire_overdue"]
    tenant = await _tenant(conn)
    waiting = {old: await _message(conn, tenant, old, outbox="") for old in MessageStatus}
    leased = {old: await _message(conn, tenant, old, outbox="r") for old in MessageStatus}
    await conn.execute("UPDATE outbox SET expire_at = now() - interval '1 second'")
    expired = await conn.fetchval(sql, 1000)

    may = sources_of(S.EXPIRED, machine)
    assert expired == len(may)
    for old, message_id in waiting.items():
        await _assert_moved(conn, message_id, old, S.EXPIRED, old in may)
    for old, message_id in leased.items():  # a relay holds it: its outcome decides
        await _assert_moved(conn, message_id, old, S.EXPIRED, False)
    left = {r[0] for r in await conn.fetch("SELECT message_id FROM outbox")}
    assert left == set(leased.values()) | {waiting[s] for s in MessageStatus if s not in may}


async def test_appending_events_wakes_watchers_once_and_nothing_wakes_them_for_nothing(
        conn, database_url: str) -> None:
    woken: list[str] = []
    done = asyncio.Event()
    listener = await asyncpg.connect(database_url)

    def heard(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        woken.append(payload)
        if payload == "barrier":
            done.set()

    await listener.add_listener("smsgw_events", heard)
    try:
        tenant = await _tenant(conn)
        for _ in range(3):
            await _message(conn, tenant, S.QUEUED, outbox="")
        claim = queries.load("outbox")["claim_due"]
        pick = _everything_of(tenant)
        assert len(await conn.fetch(claim, *pick)) == 3  # three events, one wake-up
        assert await conn.fetch(claim, *pick) == []  # nothing due: no wake-up
        # Notifications from one session arrive in order: the barrier comes last.
        await conn.execute("NOTIFY smsgw_events, 'barrier'")
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await listener.close()
    assert woken == ["", "barrier"]
