-- name: create_endpoint
-- Starts at the current horizon: an endpoint receives what happens after it exists.
INSERT INTO webhook_endpoints (id, tenant_id, url, statuses, secret, cursor_txid, cursor_seq)
VALUES ($1, $2, $3, $4, $5, pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1,
        9223372036854775807)
RETURNING *;

-- name: list_endpoints
SELECT * FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at;

-- name: delete_endpoint
DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2 RETURNING *;

-- name: lease_due
-- Leases due endpoints by moving next_attempt_at past the lease, so a
-- dispatcher that dies simply lets them fall due again.
WITH due AS (
    SELECT id FROM webhook_endpoints
    WHERE enabled AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE webhook_endpoints w
SET lease_owner = $2, next_attempt_at = now() + make_interval(secs => $3)
FROM due WHERE w.id = due.id
RETURNING w.*;

-- name: advance
-- Records delivered (or skipped) events: the cursor moves, failures reset.
UPDATE webhook_endpoints
SET cursor_txid = $3, cursor_seq = $4, failures = 0
WHERE id = $1 AND lease_owner = $2;

-- name: release
-- Hands the endpoint back: due again after the given delay.
UPDATE webhook_endpoints
SET lease_owner = NULL, next_attempt_at = now() + make_interval(secs => $3),
    failures = $4, enabled = $5, disabled_reason = $6
WHERE id = $1 AND lease_owner = $2;

-- name: record_delivery
INSERT INTO webhook_deliveries (endpoint_id, event_id, message_id, status, attempt, http_status,
                                error, duration_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: list_deliveries
SELECT d.* FROM webhook_deliveries d JOIN webhook_endpoints w ON w.id = d.endpoint_id
WHERE w.tenant_id = $1 AND d.endpoint_id = $2
ORDER BY d.id DESC LIMIT $3;
