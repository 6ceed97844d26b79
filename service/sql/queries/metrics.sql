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

-- name: metrics-system-mail-backlog
-- System mails not sent yet, and the age of the oldest, in seconds (0: none).
SELECT count(*) AS backlog,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_seconds
FROM system_mails
WHERE status IN ('queued', 'sending');

-- name: metrics-paused-editions
-- Editions paused now, by cause: the complaint guard (a reason starting 'guard:'), the worker
-- (a failure every copy would share), or an operator (no reason).
SELECT count(*) FILTER (WHERE status_reason LIKE 'guard:%') AS guard,
       count(*) FILTER (WHERE status_reason IS NOT NULL AND status_reason NOT LIKE 'guard:%') AS worker,
       count(*) FILTER (WHERE status_reason IS NULL) AS operator
FROM editions
WHERE status = 'paused';
