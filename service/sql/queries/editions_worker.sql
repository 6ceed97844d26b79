-- name: edition-content
-- What the worker needs to compose an edition's copies.
SELECT id, subject, html, text_body, from_addr, reply_to FROM editions WHERE id = $1;

-- name: list-by-id
-- A list's slug and name, for the List-Id header.
SELECT id, slug, name FROM lists WHERE id = $1;

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
