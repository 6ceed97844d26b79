-- name: delivery-claim
-- Lease a batch of one edition's due copies and say for each whether it may still go:
-- the person may have left, been suppressed or erased since the edition was queued, or
-- the edition's content stopped being timely. retry_ends_at: after it, no further try.
WITH due AS (
    SELECT d.id
    FROM deliveries d
    WHERE d.edition_id = $4 AND d.status = 'queued' AND d.next_attempt_at <= now()
    ORDER BY d.next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE deliveries d
    SET status = 'sending', lease_until = now() + make_interval(secs => $2), leased_by = $3,
        attempts = d.attempts + 1, first_attempt_at = coalesce(d.first_attempt_at, now()), updated_at = now()
    FROM due
    WHERE d.id = due.id
    RETURNING d.id, d.edition_id, d.subscriber_id, d.list_id, d.attempts, d.first_attempt_at
)
SELECT c.id, c.edition_id, c.subscriber_id, c.list_id, c.attempts, s.email, s.name,
       least(c.first_attempt_at + make_interval(secs => $5), e.expires_at) AS retry_ends_at,
       CASE
           WHEN e.expires_at <= now() THEN 'expired'
           WHEN s.id IS NULL THEN 'erased'
           WHEN EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = s.email_hash) THEN 'suppressed'
           WHEN s.status <> 'active' THEN s.status
           WHEN NOT EXISTS (
               SELECT 1 FROM subscriptions sub
               WHERE sub.subscriber_id = s.id AND sub.list_id = ANY (e.list_ids) AND sub.status = 'confirmed'
           ) THEN 'unsubscribed'
       END AS skip_reason
FROM claimed c
JOIN editions e ON e.id = c.edition_id
LEFT JOIN subscribers s ON s.id = c.subscriber_id;

-- name: delivery-mark-sent
-- Record copies the SMTP server accepted.
UPDATE deliveries d
SET status = 'sent', sent_at = now(), message_id = x.message_id, last_reply = x.reply,
    lease_until = NULL, updated_at = now()
FROM unnest($1::bigint[], $2::text[], $3::text[]) AS x(id, message_id, reply)
WHERE d.id = x.id AND d.status = 'sending';

-- name: delivery-mark-retry
-- Put temporarily failed copies back in the queue after their back-off delay.
UPDATE deliveries d
SET status = 'queued', next_attempt_at = now() + make_interval(secs => x.delay), last_reply = x.reply,
    lease_until = NULL, updated_at = now()
FROM unnest($1::bigint[], $2::float8[], $3::text[]) AS x(id, delay, reply)
WHERE d.id = x.id AND d.status = 'sending';

-- name: delivery-mark-final
-- Record copies that will not be sent: failed (permanent refusal, attempts used up) or skipped.
UPDATE deliveries d
SET status = x.status, last_reply = x.reply, lease_until = NULL, updated_at = now()
FROM unnest($1::bigint[], $2::text[], $3::text[]) AS x(id, status, reply)
WHERE d.id = x.id AND d.status = 'sending';

-- name: delivery-release
-- Give back leased copies a stopping worker did not send, without counting an attempt.
UPDATE deliveries
SET status = 'queued', attempts = greatest(attempts - 1, 0), lease_until = NULL, leased_by = NULL,
    updated_at = now()
WHERE id = ANY ($1::bigint[]) AND status = 'sending';

-- name: delivery-reclaim-expired
-- Copies whose worker died holding the lease go back to the queue (the attempt stays counted).
-- A copy whose worker died $1 times fails: it may be what kills the worker, and must not
-- stop every worker that takes it next.
UPDATE deliveries
SET lost_leases = lost_leases + 1,
    status = CASE WHEN lost_leases + 1 >= $1 THEN 'failed' ELSE 'queued' END,
    last_reply = CASE WHEN lost_leases + 1 >= $1
                      THEN 'gave up: the worker sending this copy stopped ' || (lost_leases + 1)
                           || ' times before its result was written'
                      ELSE last_reply END,
    lease_until = NULL, leased_by = NULL, updated_at = now()
WHERE status = 'sending' AND lease_until < now();

-- name: editions-sending
-- Editions whose copies workers should be sending now, with their priority (urgent ones go first).
SELECT id, priority FROM editions WHERE status IN ('queued', 'sending') ORDER BY id;

-- name: delivery-renew-leases
-- A live worker extends the leases of the copies it still holds (see service/delivery/leases.py).
UPDATE deliveries SET lease_until = now() + make_interval(secs => $2)
WHERE id = ANY ($1::bigint[]) AND status = 'sending';

-- name: console-edition-deliveries
-- A page of an edition's copies in reader id order after $3, optionally of one status ($2), with
-- the reader's address; walks the unique index, which carries the status. Copies of erased readers
-- (subscriber_id NULL) are counted on the page but not listed.
SELECT d.id, d.subscriber_id, s.email, d.status, d.attempts, d.last_reply, d.sent_at, d.next_attempt_at
FROM deliveries d
LEFT JOIN subscribers s ON s.id = d.subscriber_id
WHERE d.edition_id = $1 AND ($2::text IS NULL OR d.status = $2) AND d.subscriber_id > $3
ORDER BY d.subscriber_id
LIMIT $4;
