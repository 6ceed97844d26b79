-- name: suppression-add
-- Never mail this address again; an existing suppression keeps its first reason.
INSERT INTO suppressions (email_hash, email, reason, detail)
VALUES (email_hash($1), lower($1), $2, left($3, 2000))
ON CONFLICT (email_hash) DO NOTHING;

-- name: erasure-suppress
-- Keep only the hash of an erased address, so no import or form can bring it back; an
-- earlier suppression of the same address loses its clear-text address and detail.
INSERT INTO suppressions (email_hash, email, reason, detail)
VALUES (email_hash($1), NULL, 'erasure', NULL)
ON CONFLICT (email_hash) DO UPDATE SET email = NULL, reason = 'erasure', detail = NULL;

-- name: export-suppression
-- Whether the person's address is suppressed, and why.
SELECT reason, detail, created_at FROM suppressions WHERE email_hash = email_hash($1);

-- name: address-suppressed
-- Whether an address must never be mailed (bounced, complained, erased): checked by its hash.
SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = email_hash($1));

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
    WHERE lower(s.email) = lower($1) AND EXISTS (SELECT FROM lifted)
)
SELECT reason FROM lifted;
