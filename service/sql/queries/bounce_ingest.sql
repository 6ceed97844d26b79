-- name: bounce-delivery-owner
-- The copy a verified VERP token (or our own Message-ID) names, and the address it went to.
SELECT d.id, d.edition_id, d.subscriber_id, d.message_id, s.email
FROM deliveries d
LEFT JOIN subscribers s ON s.id = d.subscriber_id
WHERE d.id = $1;

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
