"""Applying every migration gives the schema the code expects, once."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from smsgw.adapters.postgres import migrator
from smsgw.settings import REPO_ROOT
from tests.conftest import with_database

pytestmark = pytest.mark.integration
MIGRATIONS = REPO_ROOT / "migrations"

# Every table the migrations create (and the migrator's own ledger), with
# its columns: a table or column the code does not expect fails the test.
EXPECTED_COLUMNS = {
    "schema_migrations": {"version", "name", "checksum", "applied_at"},
    "tenants": {"id", "name", "created_at", "rate_per_second", "burst", "daily_segment_quota",
                "monthly_segment_quota", "weight", "quiet_start", "quiet_end",
                "policy_updated_at"},
    "tenant_usage": {"tenant_id", "period", "period_start", "segments"},
    "api_keys": {"key_hash", "tenant_id", "key_prefix", "created_at", "revoked_at", "scopes"},
    "messages": {"id", "tenant_id", "idempotency_key", "fingerprint", "to_number", "body",
                 "sender", "encoding", "segments", "status", "attempts", "client_reference",
                 "metadata", "provider", "provider_message_id", "error_code",
                 "error_description", "created_at", "updated_at", "sent_at", "delivered_at",
                 "traffic_class", "route", "send_at", "expire_at"},
    "outbox": {"message_id", "due_at", "lease_owner", "tenant_id", "lane", "expire_at"},
    "message_events": {"id", "txid", "message_id", "tenant_id", "status", "previous_status",
                       "occurred_at", "attempt", "provider", "provider_message_id",
                       "error_code", "error_description", "client_reference"},
    "message_parts": {"provider", "provider_message_id", "message_id", "part", "status",
                      "error_code", "error_description"},
    "dead_letters": {"message_id", "tenant_id", "provider", "route", "error_code",
                     "error_description", "request", "attempts", "dead_at",
                     "replay_message_id", "replayed_at"},
    "pending_receipts": {"provider", "provider_message_id", "status", "error_code",
                         "error_description", "received_at"},
    "webhook_endpoints": {"id", "tenant_id", "url", "statuses", "secret", "enabled",
                          "disabled_reason", "cursor_txid", "cursor_seq", "failures",
                          "next_attempt_at", "lease_owner", "created_at"},
    "webhook_deliveries": {"id", "endpoint_id", "event_id", "message_id", "status", "attempt",
                           "http_status", "error", "duration_ms", "created_at"},
}
EXPECTED_INDEXES = {
    "api_keys_pkey", "tenants_pkey", "tenants_name_key", "schema_migrations_pkey",
    "messages_pkey", "messages_idempotency", "messages_tenant_created", "messages_tenant_to",
    "messages_provider_ref", "messages_awaiting_receipt", "outbox_pkey", "outbox_due",
    "message_events_pkey", "message_events_tenant", "message_events_message",
    "message_parts_pkey", "message_parts_message", "dead_letters_pkey", "dead_letters_order",
    "pending_receipts_pkey", "pending_receipts_received", "webhook_endpoints_pkey",
    "webhook_endpoints_due", "webhook_endpoints_tenant", "webhook_deliveries_pkey",
    "webhook_deliveries_endpoint", "outbox_lane_tenant_due", "outbox_expire",
    "tenant_usage_pkey",
}
# (table, trigger): the event log is append-only and wakes its watchers.
EXPECTED_TRIGGERS = {("message_events", "message_events_append_only"),
                     ("message_events", "message_events_notify")}


@pytest.fixture
async def empty_db(stores):
    name = f"smsgw_empty_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(stores[0])
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(with_database(stores[0], name))
    yield conn
    await conn.close()
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


async def test_all_migrations_give_the_expected_schema_and_apply_once(empty_db):
    applied = await migrator.migrate(empty_db, MIGRATIONS)
    again = await migrator.migrate(empty_db, MIGRATIONS)

    assert [m.version for m in applied] == [m.version for m in migrator.discover(MIGRATIONS)]
    assert again == []
    tables = {r[0] for r in await empty_db.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert tables == set(EXPECTED_COLUMNS)
    for table in tables:
        found = {r[0] for r in await empty_db.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = $1", table)}
        assert found == EXPECTED_COLUMNS[table], table
    unique = await empty_db.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'messages_idempotency'")
    assert unique == "UNIQUE (tenant_id, idempotency_key)"
    indexes = {r[0] for r in await empty_db.fetch(
        "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    assert indexes == EXPECTED_INDEXES
    triggers = {(r[0], r[1]) for r in await empty_db.fetch(
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal")}
    assert triggers == EXPECTED_TRIGGERS


async def test_the_event_log_refuses_updates_and_deletes(empty_db):
    await migrator.migrate(empty_db, MIGRATIONS)
    await empty_db.execute(
        "INSERT INTO message_events (message_id, tenant_id, status) VALUES ($1, $2, 1)",
        uuid.uuid4(), uuid.uuid4())
    for statement in ("UPDATE message_events SET status = 2", "DELETE FROM message_events",
                      "TRUNCATE message_events"):
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await empty_db.execute(statement)
    assert await empty_db.fetchval("SELECT count(*) FROM message_events") == 1


async def test_appending_events_notifies_once_per_statement_that_appends(empty_db) -> None:
    await migrator.migrate(empty_db, MIGRATIONS)
    heard: list[str] = []
    barrier = asyncio.Event()

    def listen(_conn: object, _pid: int, _channel: str, payload: str) -> None:
        heard.append(payload)
        if payload == "barrier":
            barrier.set()

    await empty_db.add_listener("smsgw_events", listen)
    append = ("INSERT INTO message_events (message_id, tenant_id, status)"
              " SELECT gen_random_uuid(), gen_random_uuid(), 1 FROM generate_series(1, $1)")
    await empty_db.execute(append, 3)  # three events: one wake-up
    await empty_db.execute(append, 0)  # none: no wake-up
    async with empty_db.transaction():  # two statements, one transaction: folded into one
        await empty_db.execute(append, 1)
        await empty_db.execute(append, 2)
    # One session's notifications arrive in order, so the barrier comes last.
    await empty_db.execute("NOTIFY smsgw_events, 'barrier'")
    await asyncio.wait_for(barrier.wait(), 10)
    assert heard == ["", "", "barrier"]
    assert await empty_db.fetchval("SELECT count(*) FROM message_events") == 6


async def test_a_changed_migration_is_refused(empty_db, tmp_path):
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE one (x int);")
    await migrator.migrate(empty_db, tmp_path)
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE one (x bigint);")
    with pytest.raises(RuntimeError, match="changed after it was applied"):
        await migrator.migrate(empty_db, tmp_path)


def test_badly_named_migration_files_are_refused(tmp_path):
    (tmp_path / "first.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"NNNN_name\.sql"):
        migrator.discover(tmp_path)
