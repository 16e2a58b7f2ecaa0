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
