-- name: due_backlog
-- How much is due per (lane, tenant), each count capped at $1, with the
-- tenant's weight: what the relay shares its next claim by
-- (domain/fairness.py). A loose index scan over outbox_lane_tenant_due: the
-- recursive part jumps from one (lane, tenant) to the next, one index probe
-- each, and the capped count reads at most $1 entries of each, so a tenant
-- with 100,000 rows costs what one with $1 does, and one with only future
-- (leased or retrying) rows costs a probe. The count reads newest due first:
-- the oldest entries of a draining backlog are the dead versions of rows
-- already claimed (until vacuum), which the claim itself has to pass anyway.
WITH RECURSIVE pairs AS (
    (SELECT lane, tenant_id FROM outbox ORDER BY lane, tenant_id LIMIT 1)
    UNION ALL
    SELECT next.lane, next.tenant_id
    FROM pairs p,
         LATERAL (SELECT o.lane, o.tenant_id FROM outbox o
                  WHERE (o.lane, o.tenant_id) > (p.lane, p.tenant_id)
                  ORDER BY o.lane, o.tenant_id LIMIT 1) AS next
)
SELECT p.lane, p.tenant_id, d.due, COALESCE(t.weight, 1) AS weight
FROM pairs p
CROSS JOIN LATERAL (
    SELECT count(*) AS due
    FROM (SELECT 1 FROM outbox o
          WHERE o.lane = p.lane AND o.tenant_id = p.tenant_id AND o.due_at <= now()
          ORDER BY o.due_at DESC
          LIMIT $1) AS capped
) AS d
LEFT JOIN tenants t ON t.id = p.tenant_id
WHERE d.due > 0;

-- name: claim_due
-- Leases, for each pick (lane $1[i], tenant $2[i], count $3[i]), that many of
-- its oldest due rows by pushing due_at to the end of the lease, and marks
-- their messages SENDING, in one statement. Rows another relay holds are
-- skipped (a claim may come back short; the next one makes up for it).
WITH picks AS (
    SELECT * FROM unnest($1::smallint[], $2::uuid[], $3::integer[]) AS p(lane, tenant_id, n)
), due AS (
    SELECT d.message_id
    FROM picks p
    CROSS JOIN LATERAL (
        SELECT o.message_id FROM outbox o
        WHERE o.lane = p.lane AND o.tenant_id = p.tenant_id AND o.due_at <= now()
        ORDER BY o.due_at
        LIMIT p.n
        FOR UPDATE SKIP LOCKED
    ) AS d
    -- $6 is the picks' total: it cuts nothing, but gives the planner the row
    -- count (a LIMIT per lateral row it cannot know), without which it hashed
    -- the whole outbox and messages tables to lease five rows.
    LIMIT $6
), leased AS (
    UPDATE outbox o
    SET lease_owner = $4, due_at = now() + make_interval(secs => $5)
    FROM due WHERE o.message_id = due.message_id
    RETURNING o.message_id
), previous AS (
    SELECT m.id, m.status FROM messages m JOIN leased l ON m.id = l.message_id
), claimed AS (
    -- A message still SENDING is one whose relay's lease lapsed: it is taken
    -- over and tried again, which is no transition and writes no event.
    UPDATE messages m
    SET status = {{status:SENDING}}, attempts = m.attempts + 1, updated_at = now()
    FROM previous p
    WHERE m.id = p.id
      AND (p.status IN {{can_move_to:SENDING}} OR p.status = {{status:SENDING}})
    RETURNING m.id, m.tenant_id, m.to_number, m.body, m.sender, m.attempts,
              m.client_reference, m.created_at, m.encoding, m.traffic_class, m.expire_at,
              m.status, p.status AS previous_status,
              -- A claim's event is bare: no provider or error yet for this attempt.
              '' AS provider, '' AS provider_message_id, '' AS error_code,
              '' AS error_description
), evented AS (
    {{append_events:claimed}} WHERE previous_status IN {{can_move_to:SENDING}}
)
SELECT * FROM claimed;

-- name: record_outcomes
-- Applies a batch of send outcomes: each outbox row is rescheduled (retry_ms
-- set) or removed, and the message gets its new status and event; a message
-- that exhausted its retries is copied to the dead letters with every
-- attempt's error. A deferral (refund) gives the claim's attempt back. Only rows
-- this relay still leases count, so a relay whose lease lapsed cannot undo
-- the work of the relay that took over. Every row is touched by exactly one
-- sub-statement: sibling CTEs run in no fixed order, and a row changed by one
-- is invisible to another's scan.
WITH input AS (
    SELECT *
    FROM unnest($2::uuid[], $3::smallint[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::integer[], $9::text[], $10::boolean[], $11::boolean[], $12::smallint[])
        AS t(id, status, provider, provider_message_id, error_code, error_description, retry_ms,
             route, refund, dead, segments)
), removed AS (
    DELETE FROM outbox o USING input i
    WHERE o.message_id = i.id AND o.lease_owner = $1 AND i.retry_ms IS NULL
    RETURNING o.message_id
), rescheduled AS (
    UPDATE outbox o
    SET due_at = now() + make_interval(secs => i.retry_ms / 1000.0), lease_owner = NULL
    FROM input i
    WHERE o.message_id = i.id AND o.lease_owner = $1 AND i.retry_ms IS NOT NULL
    RETURNING o.message_id
), owned AS (
    SELECT i.* FROM input i
    WHERE i.id IN (SELECT message_id FROM removed UNION ALL SELECT message_id FROM rescheduled)
), updated AS (
    UPDATE messages m
    SET status = w.status,
        provider = CASE WHEN w.provider <> '' THEN w.provider ELSE m.provider END,
        provider_message_id = w.provider_message_id,
        error_code = w.error_code,
        error_description = w.error_description,
        route = CASE WHEN w.route <> '' THEN w.route ELSE m.route END,
        attempts = m.attempts - CASE WHEN w.refund THEN 1 ELSE 0 END,
        -- The parts the provider actually sent, when it says: what is priced and counted.
        segments = COALESCE(w.segments, m.segments),
        sent_at = CASE WHEN w.status = {{status:SENT}} THEN now() ELSE m.sent_at END,
        updated_at = now()
    FROM owned w
    WHERE m.id = w.id AND m.status = {{status:SENDING}} AND w.status IN {{can_move_from:SENDING}}
    RETURNING m.id, m.tenant_id, m.status, {{status:SENDING}} AS previous_status, m.attempts,
              m.provider, m.provider_message_id,
              m.error_code, m.error_description, m.client_reference, m.route, w.dead,
              m.to_number, m.body, m.sender, m.metadata, m.idempotency_key, m.traffic_class,
              m.created_at
), dead_lettered AS (
    -- This statement's own FAILED event is not visible to the subquery (one
    -- snapshot), so the last attempt's error is appended from the row itself.
    INSERT INTO dead_letters (message_id, tenant_id, provider, route, error_code,
                              error_description, request, attempts)
    SELECT u.id, u.tenant_id, u.provider, u.route, u.error_code, u.error_description,
           jsonb_build_object('to', u.to_number, 'body', u.body, 'sender', u.sender,
                              'client_reference', u.client_reference,
                              'metadata', u.metadata, 'idempotency_key', u.idempotency_key,
                              'traffic_class', u.traffic_class, 'created_at', u.created_at),
           COALESCE((SELECT jsonb_agg(jsonb_build_object(
                         'attempt', e.attempt, 'provider', e.provider,
                         'error_code', e.error_code, 'error_description', e.error_description,
                         'occurred_at', e.occurred_at) ORDER BY e.id)
                     FROM message_events e
                     WHERE e.message_id = u.id AND e.error_code <> ''), '[]'::jsonb)
           || jsonb_build_array(jsonb_build_object(
                  'attempt', u.attempts, 'provider', u.provider, 'error_code', u.error_code,
                  'error_description', u.error_description, 'occurred_at', now()))
    FROM updated u WHERE u.dead
    ON CONFLICT (message_id) DO NOTHING
), evented AS (
    {{append_events:updated}}
), notified AS MATERIALIZED (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM rescheduled) THEN pg_notify('smsgw_outbox', '') END
)
-- notified (always one row) leads, so it runs even when nothing was removed.
SELECT done.message_id
FROM notified,
     LATERAL (SELECT message_id FROM removed
              UNION ALL SELECT message_id FROM rescheduled) AS done;

-- name: outbox_depth
SELECT count(*) FROM outbox;

-- name: record_parts
-- The part ids of messages a carrier took in several parts, before their
-- outcomes are recorded, so an early receipt for any part can find them.
INSERT INTO message_parts (provider, provider_message_id, message_id, part)
SELECT provider, pid, mid, part
FROM unnest($1::text[], $2::text[], $3::uuid[], $4::smallint[]) AS t(provider, pid, mid, part)
ON CONFLICT DO NOTHING;

-- name: next_due
-- How long until the earliest outbox row falls due, by the database's clock
-- (the relay sleeps until then): negative when one is due already, NULL
-- when the outbox is empty.
SELECT min(due_at) - now() FROM outbox;

-- name: expire_overdue
-- Messages whose validity ended while they waited in the outbox and that no
-- relay holds (never leased, rescheduled, or their lease lapsed) end
-- EXPIRED: the outbox row is deleted, the message moved and its event
-- appended, in batches. A relay claims under the same row lock, so a
-- message is either expired here or handed to a provider, never both.
WITH locked AS (
    SELECT o.message_id, m.status AS previous_status
    FROM outbox o JOIN messages m ON m.id = o.message_id
    WHERE o.expire_at <= now() AND (o.lease_owner IS NULL OR o.due_at <= now())
      AND m.status IN {{can_move_to:EXPIRED}}
    ORDER BY o.expire_at
    LIMIT $1
    FOR UPDATE OF o SKIP LOCKED
), dequeued AS (
    DELETE FROM outbox o USING locked l WHERE o.message_id = l.message_id
    RETURNING o.message_id, o.expire_at, l.previous_status
), expired AS (
    UPDATE messages m
    SET status = {{status:EXPIRED}}, error_code = 'VALIDITY_EXPIRED',
        error_description = 'not handed to a provider before its validity ended at '
                            || to_char(d.expire_at AT TIME ZONE 'UTC',
                                       'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        updated_at = now()
    FROM dequeued d WHERE m.id = d.message_id
    RETURNING m.id, m.tenant_id, m.status, d.previous_status, m.attempts, m.provider,
              m.provider_message_id, m.error_code, m.error_description, m.client_reference
), evented AS (
    {{append_events:expired}}
)
SELECT count(*) FROM expired;
