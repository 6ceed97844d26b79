-- name: queue-depth
-- Copies waiting to be sent or in flight, for the queue-depth gauge.
SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'sending') AS sending
FROM deliveries
WHERE status IN ('queued', 'sending');

-- name: rate-limit-purge
-- Forget rate-limit windows older than a day.
DELETE FROM rate_limits WHERE window_start < now() - interval '1 day';
