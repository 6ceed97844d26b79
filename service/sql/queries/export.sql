-- name: export-subscriptions
-- Every subscription row of one person with the list's name.
SELECT l.slug, l.name, sub.status, sub.created_at, sub.updated_at
FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
WHERE sub.subscriber_id = $1 ORDER BY l.slug;

-- name: export-bounce-events
-- Every bounce and complaint recorded about one person.
SELECT kind, status, diagnostic, source, edition_id, created_at
FROM bounce_events WHERE subscriber_id = $1 ORDER BY id;

-- name: export-deliveries-summary
-- How many copies of editions the person was sent, by outcome, and the last one sent.
SELECT status, count(*) AS copies, max(sent_at) AS last_sent_at
FROM deliveries WHERE subscriber_id = $1 GROUP BY status ORDER BY status;

-- name: export-system-mails
-- Confirmation and other system mails queued or sent to the person (without their content).
SELECT kind, status, created_at, sent_at FROM system_mails WHERE subscriber_id = $1 ORDER BY id;

-- name: export-suppression
-- Whether the person's address is suppressed, and why.
SELECT reason, detail, created_at FROM suppressions WHERE email_hash = email_hash($1);
