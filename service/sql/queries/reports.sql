-- name: edition-report
-- One scan of an edition's copies, grouped by the reader's agency and, in the same pass, by role
-- (GROUPING SETS). is_role tells the two groupings apart, so a NULL agency (no agency, or an
-- erased reader whose copy lost its subscriber_id) is not mistaken for the role rows.
-- Bounced counts only the bounce that counted for a copy (migration 0003); complained any
-- complaint; unsubscribed the same edition_unsubscribes rows as edition-get.
WITH events AS (
    SELECT b.subscriber_id,
           bool_or(b.counted AND b.kind IN ('hard', 'soft')) AS bounced,
           bool_or(b.kind = 'complaint') AS complained
    FROM bounce_events b
    WHERE b.edition_id = $1 AND b.subscriber_id IS NOT NULL
    GROUP BY b.subscriber_id
), copies AS (
    SELECT s.agency, s.role, d.status,
           coalesce(ev.bounced, false) AS bounced,
           coalesce(ev.complained, false) AS complained,
           u.subscriber_id IS NOT NULL AS unsubscribed
    FROM deliveries d
    LEFT JOIN subscribers s ON s.id = d.subscriber_id
    LEFT JOIN events ev ON ev.subscriber_id = d.subscriber_id
    LEFT JOIN edition_unsubscribes u ON u.edition_id = d.edition_id AND u.subscriber_id = d.subscriber_id
    WHERE d.edition_id = $1
)
SELECT GROUPING(agency) = 1 AS is_role, agency, role,
       count(*) AS recipients,
       count(*) FILTER (WHERE status = 'sent') AS sent,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'skipped') AS skipped,
       count(*) FILTER (WHERE bounced) AS bounced,
       count(*) FILTER (WHERE complained) AS complained,
       count(*) FILTER (WHERE unsubscribed) AS unsubscribed
FROM copies
GROUP BY GROUPING SETS ((agency), (role))
ORDER BY is_role, agency NULLS LAST, role NULLS LAST;
