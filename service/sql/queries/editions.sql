-- name: editions-sending
-- Editions whose copies workers should be sending now, with their priority (urgent ones go first).
SELECT id, priority FROM editions WHERE status IN ('queued', 'sending') ORDER BY id;

-- name: edition-insert
-- Record a posted edition unless its Idempotency-Key is taken (then nothing is returned);
-- scheduled when send_at is still ahead by the database's clock (the one workers use).
INSERT INTO editions (idempotency_key, request_hash, subject, html, text_body, from_addr, reply_to,
                      list_ids, filter, segment, send_at, expires_at, priority, status)
VALUES (:idempotency_key, :request_hash, :subject, :html, :text_body, :from_addr, :reply_to,
        :list_ids, :filter, :segment, :send_at, :expires_at, :priority,
        CASE WHEN :send_at::timestamptz > now() THEN 'scheduled' ELSE 'queued' END)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, status;

-- name: edition-by-key
-- The edition an Idempotency-Key already names, with the hash of the body it was posted with.
SELECT id, request_hash, status, recipients FROM editions WHERE idempotency_key = $1;

-- name: edition-set-recipients
-- Store the frozen recipient count after the fan-out.
UPDATE editions SET recipients = $2, updated_at = now() WHERE id = $1;

-- name: edition-get
-- An edition with its delivery counts, bounces, complaints and unsubscribes.
SELECT e.id, e.status, e.status_reason, e.priority, e.subject, e.send_at, e.expires_at, e.created_at, e.started_at, e.finished_at,
       e.recipients,
       (SELECT coalesce(array_agg(l.slug ORDER BY l.slug), '{}') FROM lists l WHERE l.id = ANY (e.list_ids)) AS lists,
       count(d.id) FILTER (WHERE d.status IN ('queued', 'sending')) AS queued,
       count(d.id) FILTER (WHERE d.status = 'sent') AS sent,
       count(d.id) FILTER (WHERE d.status = 'failed') AS failed,
       count(d.id) FILTER (WHERE d.status = 'skipped') AS skipped,
       (SELECT count(DISTINCT b.subscriber_id) FROM bounce_events b
        WHERE b.edition_id = e.id AND b.kind IN ('hard', 'soft')) AS bounced,
       (SELECT count(DISTINCT b.subscriber_id) FROM bounce_events b
        WHERE b.edition_id = e.id AND b.kind = 'complaint') AS complained,
       (SELECT count(*) FROM edition_unsubscribes u WHERE u.edition_id = e.id) AS unsubscribed
FROM editions e
LEFT JOIN deliveries d ON d.edition_id = e.id
WHERE e.id = $1
GROUP BY e.id;

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

-- name: edition-content
-- What the worker needs to compose an edition's copies.
SELECT id, subject, html, text_body, from_addr, reply_to FROM editions WHERE id = $1;

-- name: edition-mark-sending
-- The first copies of these editions were claimed.
UPDATE editions SET status = 'sending', started_at = coalesce(started_at, now()), updated_at = now()
WHERE id = ANY ($1::bigint[]) AND status = 'queued';

-- name: edition-finish
-- Editions with nothing left queued or in flight are done.
UPDATE editions e SET status = 'done', finished_at = now(), updated_at = now()
WHERE e.status IN ('queued', 'sending')
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.edition_id = e.id AND d.status IN ('queued', 'sending'))
RETURNING e.id;

-- name: edition-release-scheduled
-- Scheduled editions whose time has come, and not too long ago, start sending.
UPDATE editions SET status = 'queued', updated_at = now()
WHERE status = 'scheduled' AND send_at <= now() AND send_at > now() - make_interval(secs => $1)
RETURNING id;

-- name: edition-cancel-stale
-- Scheduled editions whose time passed too long ago (no worker ran) are cancelled, not sent late.
WITH stale AS (
    UPDATE editions SET status = 'cancelled', updated_at = now(), finished_at = now(),
        status_reason = 'send_at passed more than ' || ($1::float8 / 3600)::text || ' h before a worker ran'
    WHERE status = 'scheduled' AND send_at <= now() - make_interval(secs => $1)
    RETURNING id
)
UPDATE deliveries d SET status = 'skipped', last_reply = 'edition cancelled', updated_at = now()
FROM stale WHERE d.edition_id = stale.id AND d.status = 'queued'
RETURNING d.edition_id;

-- name: edition-halt
-- Pause an edition whose copies would all fail for one shared reason (its content, the
-- sender, the relay's credentials) instead of failing every copy; resume clears the reason.
UPDATE editions SET status = 'paused', status_reason = $2, updated_at = now()
WHERE id = $1 AND status IN ('queued', 'sending')
RETURNING id;

-- name: edition-guard
-- Pause sending editions whose complaints or hard bounces per copy sent passed their limit
-- ($2, $3), once at least $1 copies were sent. Only editions with a complaint or a counted
-- hard bounce are counted at all, so a quiet send costs one index probe. An edition the guard
-- paused once and an operator resumed is not paused again: the operator decided.
WITH trouble AS (
    SELECT b.edition_id,
           count(DISTINCT b.delivery_id) FILTER (WHERE b.kind = 'complaint') AS complaints,
           count(DISTINCT b.delivery_id) FILTER (WHERE b.kind = 'hard' AND b.counted) AS hard
    FROM bounce_events b
    JOIN editions e ON e.id = b.edition_id AND e.status = 'sending'
    WHERE b.kind IN ('complaint', 'hard')
    GROUP BY b.edition_id
), rates AS (
    SELECT t.edition_id, t.complaints, t.hard,
           (SELECT count(*) FROM deliveries d WHERE d.edition_id = t.edition_id AND d.status = 'sent') AS sent
    FROM trouble t
)
UPDATE editions e
SET status = 'paused', guard_tripped_at = now(), updated_at = now(),
    status_reason = CASE
        WHEN r.complaints > $2::float8 * r.sent
        THEN format('guard: %s complaints in %s copies sent (%s %%), above the limit of %s %%',
                    r.complaints, r.sent, round(100.0 * r.complaints / r.sent, 2), round(100 * $2::float8::numeric, 2))
        ELSE format('guard: %s hard bounces in %s copies sent (%s %%), above the limit of %s %%',
                    r.hard, r.sent, round(100.0 * r.hard / r.sent, 2), round(100 * $3::float8::numeric, 2))
    END
FROM rates r
WHERE e.id = r.edition_id AND e.status = 'sending' AND e.guard_tripped_at IS NULL AND r.sent >= $1::int
  AND (r.complaints > $2::float8 * r.sent OR r.hard > $3::float8 * r.sent)
RETURNING e.id, e.status_reason;

-- name: metrics-paused-editions
-- Editions paused now, by cause: the complaint guard (a reason starting 'guard:'), the worker
-- (a failure every copy would share), or an operator (no reason).
SELECT count(*) FILTER (WHERE status_reason LIKE 'guard:%') AS guard,
       count(*) FILTER (WHERE status_reason IS NOT NULL AND status_reason NOT LIKE 'guard:%') AS worker,
       count(*) FILTER (WHERE status_reason IS NULL) AS operator
FROM editions
WHERE status = 'paused';
