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
