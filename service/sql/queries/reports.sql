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
