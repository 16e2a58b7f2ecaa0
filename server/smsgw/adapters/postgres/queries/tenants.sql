-- name: create_tenant
INSERT INTO tenants (id, name) VALUES ($1, $2)
ON CONFLICT (name) DO NOTHING
RETURNING id;

-- name: tenant_by_name
SELECT id, name FROM tenants WHERE name = $1;

-- name: add_api_key
INSERT INTO api_keys (key_hash, tenant_id, key_prefix, scopes) VALUES ($1, $2, $3, $4);

-- name: tenant_by_key
SELECT t.id, t.name, k.scopes
FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
WHERE k.key_hash = $1 AND k.revoked_at IS NULL;

-- name: find_tenant
SELECT id, name FROM tenants WHERE name = $1 OR id::text = lower($1) LIMIT 1;

-- name: tenant_policies
SELECT id, rate_per_second, burst, daily_segment_quota, monthly_segment_quota, weight,
       quiet_start, quiet_end
FROM tenants;

-- name: set_tenant_policy
UPDATE tenants
SET rate_per_second = $2, burst = $3, daily_segment_quota = $4, monthly_segment_quota = $5,
    weight = $6, quiet_start = $7, quiet_end = $8, policy_updated_at = now()
WHERE id = $1
RETURNING id;
