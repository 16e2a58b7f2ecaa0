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
    RETURNING id, tenant_id, client_reference, created_at, send_at, expire_at
), outboxed AS (
    -- A scheduled message is due at its send time; the lane comes from its class.
    INSERT INTO outbox (message_id, tenant_id, lane, due_at, expire_at)
    SELECT i.id, $1, t.lane, COALESCE(i.send_at, now()), i.expire_at
    FROM inserted i JOIN input t ON t.id = i.id
), evented AS (
    {{first_events:inserted}}
), notified AS MATERIALIZED (
    SELECT pg_notify('smsgw_outbox', '') WHERE EXISTS (SELECT 1 FROM inserted)
)
SELECT id, created_at FROM inserted LEFT JOIN notified ON true;

-- name: insert_messages_within_quota
-- insert_messages for a tenant with a quota, after lock_usage in the same
-- transaction. Of the items whose key is new, those whose running total of
-- segments (in input order) fits in $16 are written, and the segments written
-- are added to the day's ($17) and the month's ($18) usage; the rest come back
-- refused (created_at NULL). Items whose key is taken come back not at all.
WITH input AS (
    SELECT *
    FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::smallint[], $9::smallint[], $10::text[], $11::text[], $12::text[],
                $13::timestamptz[], $14::timestamptz[], $15::smallint[]) WITH ORDINALITY
        AS t(id, idempotency_key, fingerprint, to_number, body, sender,
             encoding, segments, client_reference, metadata, traffic_class,
             send_at, expire_at, lane, ord)
), fresh AS (
    SELECT t.*, sum(t.segments) OVER (ORDER BY t.ord) AS running
    FROM input t
    WHERE NOT EXISTS (SELECT 1 FROM messages m
                      WHERE m.tenant_id = $1 AND m.idempotency_key = t.idempotency_key)
), inserted AS (
    INSERT INTO messages (id, tenant_id, idempotency_key, fingerprint, to_number, body, sender,
                          encoding, segments, status, client_reference, metadata,
                          traffic_class, send_at, expire_at, created_at, updated_at)
    SELECT id, $1, idempotency_key, fingerprint, to_number, body, sender,
           encoding, segments, {{status:QUEUED}}, client_reference, metadata::jsonb, traffic_class,
           send_at, expire_at, now(), now()
    FROM fresh WHERE running <= $16::bigint
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING id, tenant_id, client_reference, created_at, send_at, expire_at, segments
), outboxed AS (
    INSERT INTO outbox (message_id, tenant_id, lane, due_at, expire_at)
    SELECT i.id, $1, t.lane, COALESCE(i.send_at, now()), i.expire_at
    FROM inserted i JOIN input t ON t.id = i.id
), evented AS (
    {{first_events:inserted}}
), counted AS (
    UPDATE tenant_usage
    SET segments = segments + (SELECT COALESCE(sum(segments), 0) FROM inserted)
    WHERE tenant_id = $1 AND ((period = 'd' AND period_start = $17::date)
                              OR (period = 'm' AND period_start = $18::date))
), notified AS MATERIALIZED (
    SELECT pg_notify('smsgw_outbox', '') WHERE EXISTS (SELECT 1 FROM inserted)
)
SELECT id, created_at FROM inserted LEFT JOIN notified ON true
UNION ALL
SELECT id, NULL FROM fresh WHERE running > $16;

-- name: seed_usage
-- A period's count starts from the segments the tenant had already accepted
-- in it, so a quota set part-way through a day or month counts all of it.
INSERT INTO tenant_usage (tenant_id, period, period_start, segments)
SELECT $1, p.period, p.start,
       (SELECT COALESCE(sum(segments), 0) FROM messages
        WHERE tenant_id = $1 AND created_at >= p.start::timestamp AT TIME ZONE 'UTC')
FROM (VALUES ('d'::"char", (now() AT TIME ZONE 'UTC')::date),
             ('m'::"char", date_trunc('month', now() AT TIME ZONE 'UTC')::date))
    AS p(period, start)
ON CONFLICT (tenant_id, period, period_start) DO NOTHING;

-- name: lock_usage
-- The tenant's count for the current UTC day and month, locked until the
-- transaction ends: concurrent accepts of one tenant count one after another.
SELECT period::text AS period, period_start, segments
FROM tenant_usage
WHERE tenant_id = $1
  AND ((period = 'd' AND period_start = (now() AT TIME ZONE 'UTC')::date)
       OR (period = 'm' AND period_start = date_trunc('month', now() AT TIME ZONE 'UTC')::date))
ORDER BY period
FOR UPDATE;

-- name: usage
-- The current day's and month's usage: the count where one is kept (a
-- tenant with a quota), else the segments of the messages accepted since.
SELECT p.period::text AS period, p.start AS period_start,
       COALESCE(u.segments,
                (SELECT COALESCE(sum(segments), 0) FROM messages
                 WHERE tenant_id = $1
                   AND created_at >= p.start::timestamp AT TIME ZONE 'UTC'))::bigint AS segments
FROM (VALUES ('d'::"char", (now() AT TIME ZONE 'UTC')::date),
             ('m'::"char", date_trunc('month', now() AT TIME ZONE 'UTC')::date))
    AS p(period, start)
LEFT JOIN tenant_usage u
    ON u.tenant_id = $1 AND u.period = p.period AND u.period_start = p.start
ORDER BY p.period;

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
    RETURNING m.*, d.previous_status
), evented AS (
    {{append_events:canceled}}
)
SELECT * FROM canceled;
