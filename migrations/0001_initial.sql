-- The spine: tenants and their keys, messages, the outbox, the event log.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- API keys are high-entropy random tokens, so a SHA-256 digest is enough to
-- store them safely (no slow hash needed) and lets a lookup use the index.
CREATE TABLE api_keys (
    key_hash    bytea PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    key_prefix  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE messages (
    id                   uuid PRIMARY KEY,
    tenant_id            uuid NOT NULL REFERENCES tenants (id),
    idempotency_key      text NOT NULL,
    fingerprint          text NOT NULL,
    to_number            text NOT NULL,
    body                 text NOT NULL,
    sender               text NOT NULL DEFAULT '',
    encoding             smallint NOT NULL,
    segments             smallint NOT NULL,
    status               smallint NOT NULL,
    attempts             integer NOT NULL DEFAULT 0,
    client_reference     text NOT NULL DEFAULT '',
    metadata             jsonb NOT NULL DEFAULT '{}',
    provider             text NOT NULL DEFAULT '',
    provider_message_id  text NOT NULL DEFAULT '',
    error_code           text NOT NULL DEFAULT '',
    error_description    text NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    sent_at              timestamptz,
    delivered_at         timestamptz,
    -- The truth behind "double sends are structurally impossible".
    CONSTRAINT messages_idempotency UNIQUE (tenant_id, idempotency_key)
);

CREATE INDEX messages_tenant_created ON messages (tenant_id, created_at DESC, id DESC);
CREATE INDEX messages_tenant_to ON messages (tenant_id, to_number, created_at DESC);
CREATE INDEX messages_provider_ref ON messages (provider, provider_message_id)
    WHERE provider_message_id <> '';

-- Work for the relay. A row lives from accept until the message is handed
-- over (or fails for good), so the table stays small. Claiming a row moves
-- its due_at to the end of the lease: if the relay dies, the row simply falls
-- due again and another relay takes it. No foreign key: the row is written in
-- the same transaction as its message and the check would cost every insert.
CREATE TABLE outbox (
    message_id   uuid PRIMARY KEY,
    due_at       timestamptz NOT NULL,
    lease_owner  text
);

CREATE INDEX outbox_due ON outbox (due_at);

-- Every status change, appended in the transaction that made it.
CREATE TABLE message_events (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid                 bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    message_id           uuid NOT NULL,
    tenant_id            uuid NOT NULL,
    status               smallint NOT NULL,
    previous_status      smallint,
    occurred_at          timestamptz NOT NULL DEFAULT now(),
    attempt              integer NOT NULL DEFAULT 0,
    provider             text NOT NULL DEFAULT '',
    provider_message_id  text NOT NULL DEFAULT '',
    error_code           text NOT NULL DEFAULT '',
    error_description    text NOT NULL DEFAULT '',
    client_reference     text NOT NULL DEFAULT ''
);

CREATE INDEX message_events_tenant ON message_events (tenant_id, txid, id);
CREATE INDEX message_events_message ON message_events (message_id, txid, id);

CREATE FUNCTION message_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'message_events is append-only';
END;
$$;

CREATE TRIGGER message_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON message_events
    FOR EACH STATEMENT EXECUTE FUNCTION message_events_append_only();
