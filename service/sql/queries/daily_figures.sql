-- name: daily-figures-count
-- Count each finished day from $1 to $2 (dates, UTC) not counted yet and keep its figures: copies
-- sent, bounces that counted, complaints and unsubscribes, each by when it happened. Two requests
-- counting the same day at once keep the first figures (they are the same).
WITH days AS (
    SELECT g.day::date AS day, g.day AT TIME ZONE 'UTC' AS starts, (g.day + interval '1 day') AT TIME ZONE 'UTC' AS ends
    FROM generate_series($1::date, $2::date, interval '1 day') AS g(day)
    WHERE NOT EXISTS (SELECT 1 FROM daily_figures f WHERE f.day = g.day::date)
)
INSERT INTO daily_figures (day, sent, bounced, complained, unsubscribed)
SELECT days.day,
       (SELECT count(*) FROM deliveries d WHERE d.status = 'sent' AND d.sent_at >= days.starts AND d.sent_at < days.ends),
       (SELECT count(*) FROM bounce_events b
        WHERE b.created_at >= days.starts AND b.created_at < days.ends AND b.kind IN ('hard', 'soft') AND b.counted),
       (SELECT count(*) FROM bounce_events b
        WHERE b.created_at >= days.starts AND b.created_at < days.ends AND b.kind = 'complaint'),
       (SELECT count(*) FROM consents c
        WHERE c.action = 'unsubscribe' AND c.created_at >= days.starts AND c.created_at < days.ends)
FROM days
ON CONFLICT (day) DO NOTHING;

-- name: daily-figures-range
-- The kept figures of the days from $1 to $2 (dates, UTC), oldest first.
SELECT day, sent, bounced, complained, unsubscribed FROM daily_figures WHERE day BETWEEN $1 AND $2 ORDER BY day;

-- name: daily-figures-live
-- The figures of the day that has not ended yet, from $1 (its start) on: counted on every view.
SELECT (SELECT count(*) FROM deliveries d WHERE d.status = 'sent' AND d.sent_at >= $1) AS sent,
       (SELECT count(*) FROM bounce_events b
        WHERE b.created_at >= $1 AND b.kind IN ('hard', 'soft') AND b.counted) AS bounced,
       (SELECT count(*) FROM bounce_events b WHERE b.created_at >= $1 AND b.kind = 'complaint') AS complained,
       (SELECT count(*) FROM consents c WHERE c.action = 'unsubscribe' AND c.created_at >= $1) AS unsubscribed;

-- name: daily-figures-today
-- The start of today and the first day of this month, by the database's clock, in UTC.
SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS today_start,
       date_trunc('month', now() AT TIME ZONE 'UTC')::date AS this_month;
