-- name: audit-insert
-- Append one entry; written in the transaction of the change it records.
INSERT INTO audit_log (actor, action, object_type, object_id, detail, subject_hash)
VALUES ($1, $2, $3, $4, $5, CASE WHEN $6::text IS NULL THEN NULL ELSE email_hash($6) END);

-- name: audit-page
-- Entries newest first, after the cursor's id ($1 = 0 for the first page), one more than the
-- page ($2) so the caller knows whether there is a next page.
SELECT id, at, actor, action, object_type, object_id, detail
FROM audit_log
WHERE $1 = 0 OR id < $1
ORDER BY id DESC
LIMIT $2;

-- name: audit-scrub-subscriber
-- Erasure: entries about the person (by subscriber id, or by their address's hash) lose their
-- detail, and an address used as object id. The trigger allows exactly this update.
UPDATE audit_log SET
    detail = NULL,
    object_id = CASE WHEN object_type = 'subscriber' THEN object_id END
WHERE (object_type = 'subscriber' AND object_id = $1::bigint::text)
   OR subject_hash = email_hash($2);
