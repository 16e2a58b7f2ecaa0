-- name: insert_messages
-- One statement (so one implicit transaction and one round trip) writes the
-- messages, their outbox rows and first events, and wakes the relays (the
-- event log wakes watchers itself). Keys already taken are skipped; the
-- caller looks them up to tell a replay from a reused key.
WITH input AS (
    SELECT *
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::smallint[], $9::smallint[], $10::text[], $11::text[], $12::text[],
                $13::timestamptz[], $14::timestamptz[], $15::smallint[])
        AS t(id, idempotency_key, fingerprint, to_number, body, sender,
             encoding, segments, client_reference, metadata, traffic_class,
             send_at, expire_at, lane)
), inserted AS (
    INSERT INTO messages (id, tenant_id, idempotency_key, fingerprint, to_number, body, sender,
                          encoding, segments, status, client_reference, metadata,
                          traffic_class, send_at, expire_at, created_at, updated_at)
    SELECT id, $1, idempotency_key, fingerprint, to_number, body, sender,
           encoding, segments, {{status:QUEUED}}, client_reference, metadata::jsonb, traffic_class,
           send_at, expire_at, now(), now()
    FROM input
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING id, client_reference, created_at, send_at, expire_at
), outboxed AS (
    -- A scheduled message is due at its send time; the lane comes from its class.
    INSERT INTO outbox (message_id, tenant_id, lane, due_at, expire_at)
    SELECT i.id, $1, t.lane, COALESCE(i.send_at, now()), i.expire_at
    FROM inserted i JOIN input t ON t.id = i.id
), evented AS (
    INSERT INTO message_events (message_id, tenant_id, status, client_reference)
    SELECT id, $1, {{status:QUEUED}}, client_reference FROM inserted
), notified AS MATERIALIZED (
    SELECT pg_notify('smsgw_outbox', '') WHERE EXISTS (SELECT 1 FROM inserted)
)
SELECT id, created_at FROM inserted LEFT JOIN notified ON true;

-- name: find_by_idempotency_keys
SELECT idempotency_key, fingerprint, id
FROM messages
WHERE tenant_id = $1 AND idempotency_key = ANY($2::text[]);

-- name: get_messages
SELECT * FROM messages WHERE tenant_id = $1 AND id = ANY($2::uuid[]);

-- name: list_messages
SELECT *
FROM messages
WHERE tenant_id = $1
  AND ($2::smallint[] IS NULL OR status = ANY($2))
  AND ($3::text IS NULL OR to_number = $3)
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::timestamptz IS NULL OR (created_at, id) < ($6, $7::uuid))
  AND (NOT $9::boolean OR (status = {{status:QUEUED}} AND send_at > now()))
ORDER BY created_at DESC, id DESC
LIMIT $8;

-- name: cancel_message
-- Only a message that may become CANCELED (a QUEUED one) and whose outbox
-- row no relay holds is canceled; a relay claims under the same row lock, so
-- the two never both win.
WITH locked AS (
    SELECT o.message_id, m.status AS previous_status
    FROM outbox o JOIN messages m ON m.id = o.message_id
    WHERE o.message_id = $2 AND m.tenant_id = $1 AND m.status IN {{can_move_to:CANCELED}}
    FOR UPDATE OF o SKIP LOCKED
), dequeued AS (
    DELETE FROM outbox o USING locked l WHERE o.message_id = l.message_id
    RETURNING o.message_id, l.previous_status
), canceled AS (
    UPDATE messages m SET status = {{status:CANCELED}}, updated_at = now(),
                          error_code = 'CANCELED', error_description = 'canceled by the client'
    FROM dequeued d WHERE m.id = d.message_id
    RETURNING m.*
), evented AS (
    INSERT INTO message_events (message_id, tenant_id, status, previous_status, attempt,
                                error_code, error_description, client_reference)
    SELECT c.id, c.tenant_id, c.status, d.previous_status, c.attempts, c.error_code,
           c.error_description, c.client_reference
    FROM canceled c JOIN dequeued d ON d.message_id = c.id
)
SELECT * FROM canceled;
