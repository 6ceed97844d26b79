-- name: subscriber-for-bounce
-- The subscriber a bounce is about: by id when a token named them, else by address. Locked:
-- two reports about one reader (two copies expiring in the same queue run) are applied one
-- after the other, or both would read the soft-bounce count before either wrote it.
SELECT id, email, status FROM subscribers
WHERE ($1::bigint IS NOT NULL AND id = $1) OR ($1::bigint IS NULL AND lower(email) = lower($2))
LIMIT 1
FOR UPDATE;

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

-- name: suppression-add
-- Never mail this address again; an existing suppression keeps its first reason.
INSERT INTO suppressions (email_hash, email, reason, detail)
VALUES (email_hash($1), lower($1), $2, left($3, 2000))
ON CONFLICT (email_hash) DO NOTHING;

-- name: subscriber-set-bounced
-- A hard bounce (or soft bounces over the limit): stop mailing; a complaint status stays.
UPDATE subscribers SET status = 'bounced', updated_at = now()
WHERE id = $1 AND status <> 'complained';

-- name: subscriber-set-complained
-- A complaint: status complained and every subscription ended.
WITH person AS (
    UPDATE subscribers SET status = 'complained', updated_at = now() WHERE id = $1 RETURNING id
)
UPDATE subscriptions SET status = 'unsubscribed', updated_at = now()
FROM person WHERE subscriptions.subscriber_id = person.id AND subscriptions.status <> 'unsubscribed';

-- name: subscriber-count-soft-bounce
-- Count a soft bounce. The count restarts when the window has passed since the first
-- counted one, or when a copy was delivered (sent, and no bounce counted for it) since then:
-- a delay warning alone does not make a copy undelivered.
UPDATE subscribers s
SET soft_bounces = CASE WHEN restart THEN 1 ELSE s.soft_bounces + 1 END,
    first_soft_bounce_at = CASE WHEN restart THEN now() ELSE s.first_soft_bounce_at END,
    updated_at = now()
FROM (
    SELECT s2.id,
           s2.first_soft_bounce_at IS NULL
           OR s2.first_soft_bounce_at < now() - make_interval(days => $2)
           OR EXISTS (
               SELECT 1 FROM deliveries d
               WHERE d.subscriber_id = s2.id AND d.status = 'sent' AND d.sent_at > s2.first_soft_bounce_at
                 AND d.id IS DISTINCT FROM $3::bigint
                 AND NOT EXISTS (SELECT 1 FROM bounce_events b WHERE b.delivery_id = d.id AND b.counted)
           ) AS restart
    FROM subscribers s2 WHERE s2.id = $1
) AS r
WHERE s.id = r.id
RETURNING s.soft_bounces;

-- name: delivery-for-bounce
-- The delivery a report is about, with its edition and subscriber. Locked until the transaction
-- ends: two reports of one copy arriving at once are then counted one after the other, and the
-- second sees that the copy has counted (rather than running into the unique index).
SELECT id, edition_id, subscriber_id FROM deliveries WHERE id = $1 FOR NO KEY UPDATE;

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
