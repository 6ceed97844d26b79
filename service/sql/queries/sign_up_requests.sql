-- name: sign-up-request-record
-- Count a checked form sign-up against its client's bucket ($1, window $2, at most $3 hits), then, if
-- that allows it, against its address's bucket ($4, window $5, at most $6), and record it ($7, $8) for
-- deciding after the answer if both allow it: one statement, the same for every address, holding a bucket's row lock only while
-- it runs. Returns both counts (the address's NULL when it was not counted) and the sign-up's id.
WITH client AS (
    INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, to_timestamp($2), 1)
    ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1
    RETURNING hits
), address AS (
    INSERT INTO rate_limits (bucket, window_start, hits)
    SELECT $4, to_timestamp($5), 1 FROM client WHERE client.hits <= $3
    ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1
    RETURNING hits
), recorded AS (
    INSERT INTO sign_up_requests (email, request)
    SELECT $7, $8 FROM address WHERE address.hits <= $6
    RETURNING id
)
SELECT client.hits AS client_hits, address.hits AS address_hits, recorded.id
FROM client LEFT JOIN address ON true LEFT JOIN recorded ON true;

-- name: sign-up-request-left-behind
-- The oldest sign-up left waiting longer than $1 seconds (its process died before deciding it),
-- locked for the caller's transaction to decide (sign-up-request-decide).
SELECT id FROM sign_up_requests
WHERE created_at < now() - make_interval(secs => $1)
ORDER BY id
LIMIT 1
FOR UPDATE SKIP LOCKED;

-- name: sign-up-request-decide
-- Take sign-up $1 (unless another transaction holds it) and ask for it in the same statement,
-- inside the caller's transaction (subscriber_request(), migration 0011: the person, the lists,
-- the consent). Returns no row when there was nothing to take; else the address asked for, and the
-- person and the lists now waiting for confirmation, all NULL when it is suppressed (see subscriber-request).
WITH taken AS (
    DELETE FROM sign_up_requests
    WHERE id = (SELECT id FROM sign_up_requests WHERE id = $1 FOR UPDATE SKIP LOCKED)
    RETURNING request -> 'sign_up' AS sign_up, request -> 'actor' AS actor
)
SELECT taken.sign_up ->> 'email' AS email, asked.person_id, asked.person_email, asked.waiting_slugs,
       asked.waiting_names
FROM taken LEFT JOIN LATERAL subscriber_request(
    taken.sign_up ->> 'email', taken.sign_up ->> 'name', taken.sign_up ->> 'agency', taken.sign_up ->> 'role',
    taken.sign_up -> 'attributes',
    ARRAY(SELECT (l ->> 'id')::bigint
          FROM jsonb_array_elements(taken.sign_up -> 'lists') WITH ORDINALITY AS t(l, n) ORDER BY n),
    taken.actor ->> 'source', (taken.actor ->> 'ip')::inet, taken.actor ->> 'user_agent',
    taken.actor ->> 'wording_version'
) AS asked ON true;

-- name: sign-up-request-drop
-- Drop a sign-up whose deciding failed unexpectedly, so that it cannot block the rest.
DELETE FROM sign_up_requests WHERE id = $1;

-- name: erasure-sign-up-requests
-- Drop sign-ups of an erased address still waiting to be decided.
DELETE FROM sign_up_requests WHERE lower(email) = lower($1);
