-- name: audience-fan-out
-- Freeze an edition's recipients: one delivery per person, for the first of the lists
-- they are confirmed on. Same audience as audience-count.
INSERT INTO deliveries (edition_id, subscriber_id, list_id)
SELECT $2, s.id, m.list_id
FROM (
    SELECT sub.subscriber_id, min(sub.list_id) AS list_id
    FROM subscriptions sub
    WHERE sub.list_id = ANY ($1::bigint[]) AND sub.status = 'confirmed'
    GROUP BY sub.subscriber_id
) AS m
JOIN subscribers s ON s.id = m.subscriber_id
WHERE s.status = 'active'
  AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = s.email_hash)
  AND (TRUE /* segment-filter */);

-- name: bounce-delivery-guess
-- The copy a bounce that names no copy is most likely about: the reader's latest copy sent within
-- the window with no bounce counted yet (so that soft bounces across editions add up, and the
-- expiry of a copy that had a delay warning is tied to that copy).
SELECT d.id
FROM subscribers s
JOIN deliveries d ON d.subscriber_id = s.id
WHERE lower(s.email) = lower($1)
  AND d.status = 'sent'
  AND d.sent_at > now() - make_interval(days => $2)
  AND NOT EXISTS (SELECT 1 FROM bounce_events b WHERE b.delivery_id = d.id AND b.counted)
ORDER BY d.sent_at DESC
LIMIT 1;

-- name: bounce-delivery-in-edition
-- A reader's copy of one edition, for a bounce reported together with its edition.
SELECT d.id
FROM subscribers s
JOIN deliveries d ON d.subscriber_id = s.id
WHERE lower(s.email) = lower($1) AND d.edition_id = $2;

-- name: delivery-for-bounce
-- The copy a report is about (named by a verified VERP token or our own Message-ID), with its
-- edition, its reader and the address it went to. Locked until the transaction ends: two
-- reports of one copy arriving at once are then counted one after the other, and the second
-- sees that the copy has counted (rather than running into the unique index).
SELECT d.id, d.edition_id, d.subscriber_id, d.message_id, s.email
FROM deliveries d
LEFT JOIN subscribers s ON s.id = d.subscriber_id
WHERE d.id = $1
FOR NO KEY UPDATE OF d;

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

-- name: delivery-renew-leases
-- A live worker extends the leases of the copies it still holds (see service/delivery/leases.py).
-- A copy locked meanwhile is having its result written by the recorder, which ends its lease: it is
-- skipped, never waited for (waiting, in another order than the recorder's, could deadlock with it).
UPDATE deliveries SET lease_until = now() + make_interval(secs => $2)
WHERE id IN (SELECT id FROM deliveries WHERE id = ANY ($1::bigint[]) AND status = 'sending'
             FOR UPDATE SKIP LOCKED);

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

-- name: erasure-scrub-deliveries
-- Forget SMTP replies and message ids of the person's copies (they can name the address);
-- the rows stay, unlinked (deliveries has no foreign keys), so the editions' counts stay right.
UPDATE deliveries SET subscriber_id = NULL, last_reply = NULL, message_id = NULL, updated_at = now()
WHERE subscriber_id = $1;

-- name: export-deliveries-summary
-- How many copies of editions the person was sent, by outcome, and the last one sent.
SELECT status, count(*) AS copies, max(sent_at) AS last_sent_at
FROM deliveries WHERE subscriber_id = $1 GROUP BY status ORDER BY status;

-- name: queue-depth
-- Copies waiting to be sent or in flight, for the queue-depth gauge.
SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'sending') AS sending
FROM deliveries
WHERE status IN ('queued', 'sending');

-- name: metrics-editions-in-flight
-- Figures Prometheus reads at scrape time (service/metrics.py), cheap on the due-copies index.
-- Per edition being sent (at most 100, oldest first): copies waiting, copies leased, and how
-- long its longest-waiting due copy has waited. Paused and scheduled editions are not in flight.
SELECT e.id AS edition_id,
       (SELECT count(*) FROM deliveries d WHERE d.edition_id = e.id AND d.status = 'queued') AS queued,
       (SELECT count(*) FROM deliveries d WHERE d.edition_id = e.id AND d.status = 'sending') AS sending,
       coalesce((SELECT extract(epoch FROM now() - min(d.next_attempt_at))
                 FROM deliveries d
                 WHERE d.edition_id = e.id AND d.status = 'queued' AND d.next_attempt_at <= now()), 0)::float8
           AS oldest_due_seconds
FROM editions e
WHERE e.status IN ('queued', 'sending')
ORDER BY e.id
LIMIT 100;

-- name: metrics-oldest-due-copy
-- How long the longest-waiting due copy of any edition in flight has waited, in seconds (0: none).
-- Per edition, min() is one step down the due-copies index, not a scan of its copies.
SELECT coalesce(extract(epoch FROM now() - min(due.first_due)), 0)::float8
FROM editions e
CROSS JOIN LATERAL (
    SELECT min(d.next_attempt_at) AS first_due
    FROM deliveries d
    WHERE d.edition_id = e.id AND d.status = 'queued' AND d.next_attempt_at <= now()
) AS due
WHERE e.status IN ('queued', 'sending');

-- name: edition-report
-- One scan of an edition's copies joined to their readers, counted per (agency, role) pair, which
-- PostgreSQL can do in parallel; GROUPING SETS then adds those few pairs up by agency and by role.
-- is_role tells the two groupings apart, so a NULL agency (no agency, or an erased reader whose
-- copy lost its subscriber_id) is not mistaken for the role rows.
-- Bounced counts only the bounce that counted for a copy (migration 0003); complained any
-- complaint; unsubscribed the same edition_unsubscribes rows as edition-get.
WITH events AS (
    SELECT b.subscriber_id,
           bool_or(b.counted AND b.kind IN ('hard', 'soft')) AS bounced,
           bool_or(b.kind = 'complaint') AS complained
    FROM bounce_events b
    WHERE b.edition_id = $1 AND b.subscriber_id IS NOT NULL
    GROUP BY b.subscriber_id
), pairs AS (
    SELECT s.agency, s.role,
           count(*) AS recipients,
           count(*) FILTER (WHERE d.status = 'sent') AS sent,
           count(*) FILTER (WHERE d.status = 'failed') AS failed,
           count(*) FILTER (WHERE d.status = 'skipped') AS skipped,
           count(*) FILTER (WHERE ev.bounced) AS bounced,
           count(*) FILTER (WHERE ev.complained) AS complained,
           count(u.subscriber_id) AS unsubscribed
    FROM deliveries d
    LEFT JOIN subscribers s ON s.id = d.subscriber_id
    LEFT JOIN events ev ON ev.subscriber_id = d.subscriber_id
    LEFT JOIN edition_unsubscribes u ON u.edition_id = d.edition_id AND u.subscriber_id = d.subscriber_id
    WHERE d.edition_id = $1
    GROUP BY s.agency, s.role
)
SELECT GROUPING(agency) = 1 AS is_role, agency, role,
       sum(recipients)::bigint AS recipients, sum(sent)::bigint AS sent, sum(failed)::bigint AS failed,
       sum(skipped)::bigint AS skipped, sum(bounced)::bigint AS bounced, sum(complained)::bigint AS complained,
       sum(unsubscribed)::bigint AS unsubscribed
FROM pairs
GROUP BY GROUPING SETS ((agency), (role))
ORDER BY is_role, agency NULLS LAST, role NULLS LAST;

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
