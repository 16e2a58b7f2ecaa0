-- The provider pool: traffic classes and routes, multipart receipts, the
-- dead-letter queue, and API key scopes for the admin RPCs.

ALTER TABLE messages
    ADD COLUMN traffic_class text NOT NULL DEFAULT 'transactional',
    ADD COLUMN route text NOT NULL DEFAULT '';

-- 'send' for the SmsService, 'admin' for the SmsAdminService.
ALTER TABLE api_keys ADD COLUMN scopes text[] NOT NULL DEFAULT '{send}';

-- A message the carrier took in several parts (SMPP): one row per part id,
-- so a receipt naming any part finds its message, and the message settles
-- once every part has reported (or one part failed).
CREATE TABLE message_parts (
    provider             text NOT NULL,
    provider_message_id  text NOT NULL,
    message_id           uuid NOT NULL,
    part                 smallint NOT NULL,
    status               smallint,
    error_code           text NOT NULL DEFAULT '',
    error_description    text NOT NULL DEFAULT '',
    PRIMARY KEY (provider, provider_message_id)
);

CREATE INDEX message_parts_message ON message_parts (message_id);

-- Messages that exhausted their retries: the original request and every
-- attempt's error, kept for inspection and replay. A replay sends a new
-- message (the original stays FAILED: events are never rewritten) and is
-- recorded here, so replaying twice sends once.
CREATE TABLE dead_letters (
    message_id         uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL,
    provider           text NOT NULL DEFAULT '',
    route              text NOT NULL DEFAULT '',
    error_code         text NOT NULL DEFAULT '',
    error_description  text NOT NULL DEFAULT '',
    request            jsonb NOT NULL,
    attempts           jsonb NOT NULL,
    dead_at            timestamptz NOT NULL DEFAULT now(),
    replay_message_id  uuid,
    replayed_at        timestamptz
);

CREATE INDEX dead_letters_order ON dead_letters (dead_at DESC, message_id DESC);

-- Receipts that matched no SENT message yet (they overtook the SENT
-- write-back, or name a part not recorded yet). Kept here, not in one
-- process's memory, so a crash loses none and any process retries them
-- until the match window ends.
CREATE TABLE pending_receipts (
    provider             text NOT NULL,
    provider_message_id  text NOT NULL,
    status               smallint NOT NULL,
    error_code           text NOT NULL DEFAULT '',
    error_description    text NOT NULL DEFAULT '',
    received_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, provider_message_id, status)
);

CREATE INDEX pending_receipts_received ON pending_receipts (received_at);

-- Sent messages still waiting for a receipt, oldest first: the receipt
-- timeout sweeps them to EXPIRED when none ever comes.
CREATE INDEX messages_awaiting_receipt ON messages (sent_at) WHERE status = 3;
