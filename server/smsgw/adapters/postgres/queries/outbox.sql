-- name: claim_due
-- Leases due rows by pushing due_at to the end of the lease, and marks their
-- messages SENDING, in one statement. Rows another relay holds are skipped.
WITH due AS (
    SELECT message_id FROM outbox
    WHERE due_at <= now()
    ORDER BY due_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE outbox o
    SET lease_owner = $2, due_at = now() + make_interval(secs => $3)
    FROM due WHERE o.message_id = due.message_id
    RETURNING o.message_id
), previous AS (
    SELECT m.id, m.status FROM messages m JOIN leased l ON m.id = l.message_id
), claimed AS (
    UPDATE messages m
    SET status = 2, attempts = m.attempts + 1, updated_at = now()
    FROM previous p
    WHERE m.id = p.id AND p.status IN (1, 2)
    RETURNING m.id, m.tenant_id, m.to_number, m.body, m.sender, m.attempts,
              m.client_reference, m.created_at, p.status AS previous_status
), evented AS (
    INSERT INTO message_events (message_id, tenant_id, status, previous_status, attempt,
                                client_reference)
    SELECT id, tenant_id, 2, previous_status, attempts, client_reference
    FROM claimed WHERE previous_status = 1
), notified AS MATERIALIZED (
    SELECT pg_notify('smsgw_events', '') WHERE EXISTS (SELECT 1 FROM claimed)
)
SELECT claimed.* FROM claimed LEFT JOIN notified ON true;

-- name: record_outcomes
-- Applies a batch of send outcomes: each outbox row is rescheduled (retry_ms
-- set) or removed, and the message gets its new status and event. Only rows
-- this relay still leases count, so a relay whose lease lapsed cannot undo
-- the work of the relay that took over. Every row is touched by exactly one
-- sub-statement: sibling CTEs run in no fixed order, and a row changed by one
-- is invisible to another's scan.
WITH input AS (
    SELECT *
    FROM unnest($2::uuid[], $3::smallint[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::integer[])
        AS t(id, status, provider, provider_message_id, error_code, error_description, retry_ms)
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
        provider = w.provider,
        provider_message_id = w.provider_message_id,
        error_code = w.error_code,
        error_description = w.error_description,
        sent_at = CASE WHEN w.status = 3 THEN now() ELSE m.sent_at END,
        updated_at = now()
    FROM owned w
    WHERE m.id = w.id AND m.status = 2
    RETURNING m.id, m.tenant_id, m.status, m.attempts, m.provider, m.provider_message_id,
              m.error_code, m.error_description, m.client_reference
), evented AS (
    INSERT INTO message_events (message_id, tenant_id, status, previous_status, attempt, provider,
                                provider_message_id, error_code, error_description,
                                client_reference)
    SELECT id, tenant_id, status, 2, attempts, provider, provider_message_id, error_code,
           error_description, client_reference
    FROM updated
), notified AS MATERIALIZED (
    SELECT pg_notify('smsgw_events', ''),
           CASE WHEN EXISTS (SELECT 1 FROM rescheduled) THEN pg_notify('smsgw_outbox', '') END
)
-- notified (always one row) leads, so it runs even when nothing was removed.
SELECT done.message_id
FROM notified,
     LATERAL (SELECT message_id FROM removed
              UNION ALL SELECT message_id FROM rescheduled) AS done;

-- name: outbox_depth
SELECT count(*) FROM outbox;
