-- name: monthly-readers-count
-- Count each finished month from $1 to $2 (first days, UTC) not counted yet and keep its figures:
-- readers by organisation and by role at the month's end, that is those confirmed by then and not
-- gone by then (a reader no longer active left when their record last changed).
WITH months AS (
    SELECT g::date AS month, (g + interval '1 month') AT TIME ZONE 'UTC' AS ends
    FROM generate_series($1::date, $2::date, interval '1 month') AS g
    WHERE NOT EXISTS (SELECT 1 FROM monthly_readers r WHERE r.month = g::date)
), counted AS (
    SELECT m.month, GROUPING(s.agency) = 1 AS is_role, s.agency, s.role, count(*) AS readers
    FROM months m
    JOIN subscribers s ON s.confirmed_at < m.ends AND (s.status = 'active' OR s.updated_at >= m.ends)
    GROUP BY GROUPING SETS ((m.month, s.agency), (m.month, s.role))
)
INSERT INTO monthly_readers (month, is_role, term, readers)
SELECT month, is_role, CASE WHEN is_role THEN role ELSE agency END, readers FROM counted
ON CONFLICT DO NOTHING;

-- name: monthly-readers-range
-- The kept figures of the months from $1 to $2, with the organisations' and roles' names.
SELECT r.month, r.is_role, CASE WHEN r.is_role THEN coalesce(ro.name, r.term) ELSE coalesce(a.name, r.term) END
           AS name, r.readers
FROM monthly_readers r
LEFT JOIN agencies a ON NOT r.is_role AND a.slug = r.term
LEFT JOIN roles ro ON r.is_role AND ro.slug = r.term
WHERE r.month BETWEEN $1 AND $2
ORDER BY r.is_role, name NULLS LAST, r.month;
