-- Signed status webhooks: endpoints with their own position in the event log.

CREATE TABLE webhook_endpoints (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    url              text NOT NULL,
    statuses         smallint[] NOT NULL DEFAULT '{}',  -- empty: every status
    -- Needed in the clear to sign; never returned after creation.
    secret           text NOT NULL,
    enabled          boolean NOT NULL DEFAULT true,
    disabled_reason  text NOT NULL DEFAULT '',
    -- The last event delivered (or skipped): restarts neither lose nor resend.
    cursor_txid      bigint NOT NULL,
    cursor_seq       bigint NOT NULL,
    failures         integer NOT NULL DEFAULT 0,
    -- Like the outbox: a dispatcher leases an endpoint by moving this forward.
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_endpoints_due ON webhook_endpoints (next_attempt_at) WHERE enabled;
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id);

CREATE TABLE webhook_deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id  uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id     text NOT NULL,
    message_id   uuid NOT NULL,
    status       smallint NOT NULL,
    attempt      integer NOT NULL,
    http_status  integer NOT NULL,
    error        text NOT NULL DEFAULT '',
    duration_ms  integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);
