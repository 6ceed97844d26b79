-- name: bounce-event-insert
-- Store one event with what it matched. It counts only when it is a bounce and its copy has no
-- counted bounce yet (a unique index holds that); a provider event already stored (same source,
-- event id and address) inserts nothing and returns no row.
INSERT INTO bounce_events (subscriber_id, delivery_id, edition_id, email_hash, kind, status, diagnostic, source,
                           event_id, counted)
VALUES ($1, $2, $3, email_hash($4), $5, $6, left($7, 2000), $8, $9,
        $5::text IN ('hard', 'soft')
        AND NOT EXISTS (SELECT 1 FROM bounce_events b WHERE b.delivery_id = $2::bigint AND b.counted))
ON CONFLICT (source, event_id, email_hash) WHERE event_id IS NOT NULL DO NOTHING
RETURNING id, counted;

-- name: erasure-bounce-events
-- Drop bounce events about the address, including ones that never matched the person.
DELETE FROM bounce_events WHERE subscriber_id = $1 OR email_hash = email_hash($2);

-- name: export-bounce-events
-- Every bounce and complaint recorded about one person.
SELECT kind, status, diagnostic, source, edition_id, created_at
FROM bounce_events WHERE subscriber_id = $1 ORDER BY id;

-- name: console-bounces-recent
-- The newest bounce and complaint reports before the id $1 (NULL: from the newest), only those
-- no reader was found for when $2; with the reader's address and the edition's subject; $3 rows.
SELECT b.id, b.kind, b.status, b.diagnostic, b.source, b.counted, b.created_at,
       b.subscriber_id, s.email, b.edition_id, e.subject
FROM bounce_events b
LEFT JOIN subscribers s ON s.id = b.subscriber_id
LEFT JOIN editions e ON e.id = b.edition_id
WHERE ($1::bigint IS NULL OR b.id < $1) AND (NOT $2 OR b.subscriber_id IS NULL)
ORDER BY b.id DESC
LIMIT $3;

-- name: console-subscriber-bounces
-- One reader's bounce and complaint reports, newest first (their page shows the last 50).
SELECT b.id, b.kind, b.status, b.diagnostic, b.source, b.counted, b.created_at, b.edition_id, e.subject
FROM bounce_events b
LEFT JOIN editions e ON e.id = b.edition_id
WHERE b.subscriber_id = $1
ORDER BY b.id DESC
LIMIT 50;
