-- name: consent-insert
-- Append one proof of consent: what happened, to which lists, from where, under which wording.
INSERT INTO consents (subscriber_id, action, lists, source, ip, user_agent, wording_version)
VALUES ($1, $2, $3::text[], $4, $5::inet, left($6, 500), $7);

-- name: consent-history
-- Every consent record of one person, oldest first (export).
SELECT action, lists, source, host(ip) AS ip, user_agent, wording_version, created_at
FROM consents WHERE subscriber_id = $1 ORDER BY id;

