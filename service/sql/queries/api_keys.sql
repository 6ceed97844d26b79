-- name: api-key-insert
-- Store a new API key: only its prefix and the SHA-256 of its secret.
INSERT INTO api_keys (name, prefix, secret_hash, scopes)
VALUES ($1, $2, $3, $4)
RETURNING id, name, prefix, scopes, created_at;

-- name: api-key-by-prefix
-- Find a live key by the public prefix it was presented with.
SELECT id, name, secret_hash, scopes
FROM api_keys
WHERE prefix = $1 AND revoked_at IS NULL;

-- name: api-key-touch
-- Record use, at most once a minute so that every request is not a write.
UPDATE api_keys SET last_used_at = now()
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');

-- name: api-key-list
-- Every key with its state, newest first; secrets are never returned.
SELECT id, name, prefix, scopes, created_at, last_used_at, revoked_at
FROM api_keys
ORDER BY id DESC;

-- name: api-key-revoke
-- Revoke a key by id or prefix; revoking twice is harmless.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id::text = $1 OR prefix = $1
RETURNING id, name, prefix, revoked_at;
