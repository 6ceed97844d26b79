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
