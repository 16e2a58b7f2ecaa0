-- name: tenant_events
-- Events after the cursor, but only from transactions older than every
-- transaction still running: below that horizon nothing can appear any more,
-- so reading in (txid, id) order never skips an event that commits late.
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin)
SELECT e.*, h.xmin AS horizon
FROM horizon h
LEFT JOIN LATERAL (
    SELECT * FROM message_events
    WHERE tenant_id = $1 AND (txid, id) > ($2, $3) AND txid < h.xmin
    ORDER BY txid, id
    LIMIT $4
) e ON true;

-- name: message_events
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS xmin)
SELECT e.*, h.xmin AS horizon
FROM horizon h
LEFT JOIN LATERAL (
    SELECT * FROM message_events
    WHERE message_id = ANY($1::uuid[]) AND (txid, id) > ($2, $3) AND txid < h.xmin
    ORDER BY txid, id
    LIMIT $4
) e ON true;

-- name: horizon
SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint;

-- name: watch_targets
-- The current state of watched messages and the cursor of the event that
-- put them there, so a watch knows when every message has reached its end.
SELECT m.id, m.status,
       (SELECT e.txid FROM message_events e
        WHERE e.message_id = m.id AND e.status = m.status ORDER BY e.txid DESC, e.id DESC LIMIT 1)
           AS txid,
       (SELECT e.id FROM message_events e
        WHERE e.message_id = m.id AND e.status = m.status ORDER BY e.txid DESC, e.id DESC LIMIT 1)
           AS seq
FROM messages m
WHERE m.tenant_id = $1 AND m.id = ANY($2::uuid[]);
