-- name: apply_receipts
-- Matches receipts to SENT messages by (provider, provider_message_id) and
-- records the final state. Returns the ids it matched; the caller keeps the
-- rest for a while, as a receipt may overtake the SENT commit. $6 says which
-- messages: single-part ones (false), or multipart ones settled through
-- their parts (true), under the message's own id.
WITH input AS (
    SELECT *
    FROM unnest($2::text[], $3::smallint[], $4::text[], $5::text[])
        AS t(provider_message_id, status, error_code, error_description)
), updated AS (
    UPDATE messages m
    SET status = i.status,
        error_code = i.error_code,
        error_description = i.error_description,
        delivered_at = CASE WHEN i.status = {{status:DELIVERED}} THEN now() END,
        updated_at = now()
    FROM input i
    -- The <> '' lets the planner use the partial index messages_provider_ref.
    -- The guard on the receipt's status nulls the join key (a receipt whose
    -- status SENT may not become matches nothing) instead of filtering the
    -- input: a filter on the unnested input makes the planner expect ~1 % of
    -- the batch (8 rows of 500), and with the statistics of a table whose SENT
    -- rows came after its last ANALYZE it then rescans the whole batch for
    -- every SENT message (a nested loop, quadratic: seconds per batch).
    WHERE m.provider = $1
      AND m.provider_message_id =
          CASE WHEN i.status IN {{can_move_from:SENT}} THEN i.provider_message_id END
      AND m.provider_message_id <> ''
      AND m.status = {{status:SENT}}
      AND EXISTS (SELECT 1 FROM message_parts p WHERE p.message_id = m.id) = $6
    RETURNING m.id, m.tenant_id, m.status, {{status:SENT}} AS previous_status, m.attempts,
              m.provider, m.provider_message_id, m.error_code, m.error_description,
              m.client_reference
), evented AS (
    {{append_events:updated}}
)
SELECT provider_message_id FROM updated;

-- name: find_provider_refs
-- Which of these provider ids belong to a message that already settled: a
-- receipt for one is a duplicate. A message still SENT is not in the list:
-- its SENT write-back may have committed just after the receipt was tried,
-- and the receipt must be tried again, not dropped.
SELECT provider_message_id FROM messages
WHERE provider = $1 AND provider_message_id = ANY($2::text[]) AND provider_message_id <> ''
  AND status <> {{status:SENT}};

-- name: mark_parts
-- Receipts that name a part of a multipart message. A part keeps its first
-- report; every receipt naming a known part counts as matched.
UPDATE message_parts p
SET status = COALESCE(p.status, i.status),
    error_code = CASE WHEN p.status IS NULL THEN i.error_code ELSE p.error_code END,
    error_description = CASE WHEN p.status IS NULL THEN i.error_description
                             ELSE p.error_description END
FROM unnest($2::text[], $3::smallint[], $4::text[], $5::text[])
    AS i(provider_message_id, status, error_code, error_description)
WHERE p.provider = $1 AND p.provider_message_id = i.provider_message_id
RETURNING p.provider_message_id, p.message_id;

-- name: settled_multipart
-- Of these multipart messages, those now settled: every part delivered, or
-- one part not. Reported as one receipt under the message's own provider id.
SELECT m.provider_message_id,
       CASE WHEN bool_or(p.status = {{status:UNDELIVERED}}) THEN {{status:UNDELIVERED}}
            ELSE {{status:DELIVERED}} END AS status,
       COALESCE(max(p.error_code) FILTER (WHERE p.status = {{status:UNDELIVERED}}), '')
           AS error_code,
       COALESCE(max(p.error_description) FILTER (WHERE p.status = {{status:UNDELIVERED}}), '')
           AS error_description
FROM message_parts p JOIN messages m ON m.id = p.message_id
WHERE p.message_id = ANY($1::uuid[]) AND m.status = {{status:SENT}}
GROUP BY m.id, m.provider_message_id
HAVING bool_or(p.status = {{status:UNDELIVERED}}) OR bool_and(p.status IS NOT NULL);

-- name: expire_unreceipted
-- Messages SENT longer ago than the receipt timeout, with no receipt: the
-- carrier lost it (or we did, in a crash between its ack and our write).
-- They end EXPIRED, with an event, in batches.
WITH due AS (
    SELECT id FROM messages
    WHERE status = {{status:SENT}} AND {{status:EXPIRED}} IN {{can_move_from:SENT}}
      AND sent_at < now() - make_interval(secs => $1)
    ORDER BY sent_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), updated AS (
    UPDATE messages m
    SET status = {{status:EXPIRED}}, error_code = 'RECEIPT_TIMEOUT',
        error_description = 'no delivery receipt within the receipt timeout', updated_at = now()
    FROM due WHERE m.id = due.id
    RETURNING m.id, m.tenant_id, m.status, {{status:SENT}} AS previous_status, m.attempts,
              m.provider, m.provider_message_id, m.error_code, m.error_description,
              m.client_reference
), evented AS (
    {{append_events:updated}}
)
SELECT count(*) FROM updated;

-- name: hold_receipts
INSERT INTO pending_receipts (provider, provider_message_id, status, error_code,
                              error_description)
SELECT $1, * FROM unnest($2::text[], $3::smallint[], $4::text[], $5::text[])
ON CONFLICT DO NOTHING;

-- name: take_pending
-- The oldest held receipts, locked so two processes never work the same
-- ones; each says whether its match window has run out.
SELECT provider, provider_message_id, status, error_code, error_description,
       received_at < now() - make_interval(secs => $2) AS expired
FROM pending_receipts
ORDER BY received_at
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: release_pending
DELETE FROM pending_receipts
WHERE (provider, provider_message_id, status) IN (
    SELECT * FROM unnest($1::text[], $2::text[], $3::smallint[]));
