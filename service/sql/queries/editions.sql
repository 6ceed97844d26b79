-- name: edition-insert
-- Record a posted edition unless its Idempotency-Key is taken (then nothing is returned);
-- scheduled when send_at is still ahead by the database's clock (the one workers use).
INSERT INTO editions (idempotency_key, request_hash, subject, html, text_body, from_addr, reply_to,
                      list_ids, filter, segment, send_at, expires_at, priority, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
        CASE WHEN $11::timestamptz > now() THEN 'scheduled' ELSE 'queued' END)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, status;

-- name: edition-by-key
-- The edition an Idempotency-Key already names, with the hash of the body it was posted with.
SELECT id, request_hash, status, recipients FROM editions WHERE idempotency_key = $1;

-- name: edition-set-recipients
-- Store the frozen recipient count after the fan-out.
UPDATE editions SET recipients = $2, updated_at = now() WHERE id = $1;

-- name: edition-get
-- An edition with its delivery counts, bounces, complaints and unsubscribes. The copies are
-- counted per edition from the unique index, which carries the status (migration 0008).
SELECT e.id, e.status, e.status_reason, e.priority, e.subject, e.send_at, e.expires_at, e.created_at, e.started_at, e.finished_at,
       e.recipients,
       (SELECT coalesce(array_agg(l.slug ORDER BY l.slug), '{}') FROM lists l WHERE l.id = ANY (e.list_ids)) AS lists,
       c.queued, c.sent, c.failed, c.skipped,
       (SELECT count(DISTINCT b.subscriber_id) FROM bounce_events b
        WHERE b.edition_id = e.id AND b.kind IN ('hard', 'soft')) AS bounced,
       (SELECT count(DISTINCT b.subscriber_id) FROM bounce_events b
        WHERE b.edition_id = e.id AND b.kind = 'complaint') AS complained,
       (SELECT count(*) FROM edition_unsubscribes u WHERE u.edition_id = e.id) AS unsubscribed
FROM editions e
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE d.status IN ('queued', 'sending')) AS queued,
           count(*) FILTER (WHERE d.status = 'sent') AS sent,
           count(*) FILTER (WHERE d.status = 'failed') AS failed,
           count(*) FILTER (WHERE d.status = 'skipped') AS skipped
    FROM deliveries d WHERE d.edition_id = e.id
) c
WHERE e.id = $1;

-- name: edition-pause
-- Stop claiming an edition's copies; copies in flight finish.
UPDATE editions SET status = 'paused', updated_at = now()
WHERE id = $1 AND status IN ('scheduled', 'queued', 'sending')
RETURNING id;

-- name: edition-resume
-- Resume a paused edition: scheduled again if its time is still ahead, else queued.
-- Copies already sent stay sent, so nothing is sent twice.
UPDATE editions
SET status = CASE WHEN send_at > now() THEN 'scheduled' ELSE 'queued' END, status_reason = NULL,
    updated_at = now()
WHERE id = $1 AND status = 'paused'
RETURNING id;

-- name: edition-cancel
-- Cancel an edition that has not finished; its unsent copies are skipped.
WITH cancelled AS (
    UPDATE editions SET status = 'cancelled', status_reason = 'cancelled by request', finished_at = now(),
        updated_at = now()
    WHERE id = $1 AND status IN ('scheduled', 'queued', 'sending', 'paused')
    RETURNING id
), skipped AS (
    UPDATE deliveries d SET status = 'skipped', last_reply = 'edition cancelled', updated_at = now()
    FROM cancelled WHERE d.edition_id = cancelled.id AND d.status = 'queued'
)
SELECT id FROM cancelled;

-- name: edition-exists
-- Whether an edition exists (to tell 404 from 409 on a refused state change).
SELECT status FROM editions WHERE id = $1;

-- name: edition-deliveries
-- A page of an edition's deliveries in id order, optionally of one status.
SELECT id, subscriber_id, status, attempts, last_reply, message_id, sent_at, next_attempt_at
FROM deliveries
WHERE edition_id = $1 AND ($2::text IS NULL OR status = $2) AND id > $3
ORDER BY id
LIMIT $4;

-- name: edition-view-copy
-- What a reader's web copy of an edition needs: the edition's HTML, the reader's name (NULL when
-- erased), and their copy (NULL: none was made for them) with the list it was sent for.
-- No row: the edition is gone.
SELECT e.html, s.id AS subscriber_id, s.name, d.id AS delivery_id, d.list_id
FROM editions e
LEFT JOIN subscribers s ON s.id = $2
LEFT JOIN deliveries d ON d.edition_id = e.id AND d.subscriber_id = s.id
WHERE e.id = $1;

-- name: console-editions-page
-- The console's editions, newest first, before the id $1 (NULL: from the newest); $2 rows.
SELECT id, subject, status, priority, recipients, send_at, created_at, started_at, finished_at
FROM editions
WHERE $1::bigint IS NULL OR id < $1
ORDER BY id DESC
LIMIT $2;

-- name: console-editions-in-flight
-- Editions not yet finished, with their copies by status for the dashboard's progress bars; each
-- edition's copies are counted from the unique index, which carries the status (migration 0008).
SELECT e.id, e.subject, e.status, e.status_reason, e.recipients, e.started_at,
       c.sent, c.failed, c.skipped, c.queued
FROM editions e
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE d.status = 'sent') AS sent,
           count(*) FILTER (WHERE d.status = 'failed') AS failed,
           count(*) FILTER (WHERE d.status = 'skipped') AS skipped,
           count(*) FILTER (WHERE d.status IN ('queued', 'sending')) AS queued
    FROM deliveries d WHERE d.edition_id = e.id
) c
WHERE e.status IN ('scheduled', 'queued', 'sending', 'paused')
ORDER BY e.id;

-- name: console-edition-content
-- What the console's edition page shows besides the counts: sender, target and the posted body.
SELECT e.from_addr, e.reply_to, e.html, e.text_body, e.filter, e.segment,
       (SELECT coalesce(array_agg(l.name ORDER BY l.name), '{}') FROM lists l WHERE l.id = ANY (e.list_ids))
           AS list_names
FROM editions e
WHERE e.id = $1;
