-- name: suppression-page
-- Suppressions newest first, after the keyset cursor (created_at, email_hash) when one is given.
SELECT email_hash, email, reason, detail, created_at
FROM suppressions
WHERE $1::timestamptz IS NULL OR (created_at, email_hash) < ($1::timestamptz, $2::bytea)
ORDER BY created_at DESC, email_hash DESC
LIMIT $3;

-- name: suppression-remove
-- Lift an address's suppression (found by its hash, so an erased person's too) and restart the
-- reader's soft-bounce count, so an old count cannot suppress them again at the next soft bounce.
WITH lifted AS (
    DELETE FROM suppressions WHERE email_hash = email_hash($1) RETURNING email_hash, reason
), reset AS (
    UPDATE subscribers s SET soft_bounces = 0, first_soft_bounce_at = NULL, updated_at = now()
    FROM lifted WHERE s.email_hash = lifted.email_hash
)
SELECT reason FROM lifted;
