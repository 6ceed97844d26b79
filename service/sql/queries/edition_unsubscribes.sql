-- name: edition-unsubscribe-record
-- Count an unsubscribe against the edition whose link was used (if the edition still exists).
INSERT INTO edition_unsubscribes (edition_id, subscriber_id)
SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM editions WHERE id = $1)
ON CONFLICT DO NOTHING;
