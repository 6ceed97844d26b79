-- name: audience-count
-- How many people an edition to these lists would reach now: active, confirmed on at
-- least one of the lists, not suppressed, matching the segment filter; one per person.
-- "TRUE /* segment-filter */" is replaced by the compiled filter (placeholders only).
SELECT count(*)
FROM subscribers s
WHERE s.status = 'active'
  AND EXISTS (
      SELECT 1 FROM subscriptions sub
      WHERE sub.subscriber_id = s.id AND sub.list_id = ANY ($1::bigint[]) AND sub.status = 'confirmed'
  )
  AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = s.email_hash)
  AND (TRUE /* segment-filter */);

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
