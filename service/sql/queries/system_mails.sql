-- name: erasure-system-mails
-- Drop the person's confirmation and other system mails: the stored message holds the address.
DELETE FROM system_mails WHERE subscriber_id = $1 OR lower(recipient) = lower($2);

-- name: export-system-mails
-- Confirmation and other system mails queued or sent to the person (without their content).
SELECT kind, status, created_at, sent_at FROM system_mails WHERE subscriber_id = $1 ORDER BY id;

-- name: metrics-system-mail-backlog
-- System mails not sent yet, and the age of the oldest, in seconds (0: none).
SELECT count(*) AS backlog,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_seconds
FROM system_mails
WHERE status IN ('queued', 'sending');

-- name: system-mail-insert-confirmation
-- Queue a confirmation mail to person $1 at $2 for the lists named $3, inside the request's
-- transaction; the worker composes it as it sends it.
INSERT INTO system_mails (subscriber_id, kind, recipient, lists) VALUES ($1, 'confirm', $2, $3);

-- name: system-mail-claim
-- Lease due system mails (new, retry-due, or whose lease expired).
WITH due AS (
    SELECT id FROM system_mails
    WHERE (status = 'queued' AND next_attempt_at <= now()) OR (status = 'sending' AND lease_until < now())
    ORDER BY id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE system_mails m
SET status = 'sending', lease_until = now() + make_interval(secs => $2), attempts = m.attempts + 1
FROM due WHERE m.id = due.id
RETURNING m.id, m.recipient, m.message, m.attempts, m.subscriber_id, m.lists;

-- name: system-mail-sent
-- The SMTP server accepted it.
UPDATE system_mails SET status = 'sent', sent_at = now(), last_reply = $2, lease_until = NULL WHERE id = $1;

-- name: system-mail-retry
-- A temporary failure: try again after the delay.
UPDATE system_mails
SET status = 'queued', next_attempt_at = now() + make_interval(secs => $2), last_reply = $3, lease_until = NULL
WHERE id = $1;

-- name: system-mail-failed
-- A permanent failure, or attempts used up.
UPDATE system_mails SET status = 'failed', last_reply = $2, lease_until = NULL WHERE id = $1;

-- name: system-mail-renew-leases
-- A live worker extends the leases of the system mails it still holds.
UPDATE system_mails SET lease_until = now() + make_interval(secs => $2)
WHERE id = ANY ($1::bigint[]) AND status = 'sending';

-- name: system-mail-for-bounce
-- The system mail a bounce's return-path token names.
SELECT id, subscriber_id, kind, recipient FROM system_mails WHERE id = $1;

-- name: system-mail-drop-signup
-- A confirmation mail bounced hard: drop the sign-up it asked to confirm. A person still pending
-- is removed (their pending subscriptions and consents go with them); anyone else loses only the
-- lists still pending confirmation, so an active reader keeps their status and confirmed lists.
WITH person AS (
    DELETE FROM subscribers WHERE id = $1 AND status = 'pending' RETURNING id
)
DELETE FROM subscriptions
WHERE subscriber_id = $1 AND status = 'pending' AND NOT EXISTS (SELECT 1 FROM person);
