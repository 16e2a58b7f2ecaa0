-- name: list_dead_letters
-- Newest first, keyset-paged on (dead_at, message_id); empty filters match all.
SELECT * FROM dead_letters
WHERE ($1::uuid IS NULL OR tenant_id = $1)
  AND ($2::text = '' OR provider = $2)
  AND ($3::text = '' OR error_code = $3)
  AND (NOT $4::boolean OR replay_message_id IS NULL)
  AND ($5::timestamptz IS NULL OR (dead_at, message_id) < ($5, $6::uuid))
ORDER BY dead_at DESC, message_id DESC
LIMIT $7;

-- name: lock_dead_letters
-- The dead letters to replay, locked so two replays of one cannot both send.
SELECT d.message_id, d.tenant_id, d.replay_message_id, m.to_number, m.body, m.sender,
       m.encoding, m.segments, m.client_reference, m.metadata, m.traffic_class,
       m.idempotency_key, m.fingerprint
FROM dead_letters d JOIN messages m ON m.id = d.message_id
WHERE d.message_id = ANY($1::uuid[])
ORDER BY d.message_id
FOR UPDATE OF d;

-- name: insert_replay
-- The replay: a new message with the original's request, its outbox entry and
-- first event. Its idempotency key derives from the original's id, so the
-- unique constraint is a second guard against sending one dead letter twice.
WITH inserted AS (
    INSERT INTO messages (id, tenant_id, idempotency_key, fingerprint, to_number, body, sender,
                          encoding, segments, status, client_reference, metadata,
                          traffic_class, created_at, updated_at)
    SELECT t.new_id, m.tenant_id, 'dead-letter-replay:' || m.id, m.fingerprint, m.to_number,
           m.body, m.sender, m.encoding, m.segments, {{status:QUEUED}}, m.client_reference,
           m.metadata || jsonb_build_object('replay_of', m.id::text), m.traffic_class,
           now(), now()
    FROM unnest($1::uuid[], $2::uuid[]) AS t(original_id, new_id)
    JOIN messages m ON m.id = t.original_id
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING id, tenant_id, client_reference, traffic_class
), outboxed AS (
    INSERT INTO outbox (message_id, tenant_id, lane, due_at)
    SELECT id, tenant_id, {{lane_of:traffic_class}}, now() FROM inserted
), evented AS (
    {{first_events:inserted}}
), marked AS (
    UPDATE dead_letters d SET replay_message_id = t.new_id, replayed_at = now()
    FROM unnest($1::uuid[], $2::uuid[]) AS t(original_id, new_id)
    WHERE d.message_id = t.original_id AND t.new_id IN (SELECT id FROM inserted)
), notified AS MATERIALIZED (
    SELECT pg_notify('smsgw_outbox', '') WHERE EXISTS (SELECT 1 FROM inserted)
)
SELECT id FROM inserted LEFT JOIN notified ON true;
