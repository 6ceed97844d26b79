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

-- name: sign-up-request-take
-- Take one waiting sign-up to decide inside the caller's transaction: this one ($1), or, with
-- $1 NULL, the oldest one left waiting longer than $2 seconds (its process died before deciding).
DELETE FROM sign_up_requests
WHERE id = (
    SELECT id FROM sign_up_requests
    WHERE ($1::bigint IS NOT NULL AND id = $1)
       OR ($1::bigint IS NULL AND created_at < now() - make_interval(secs => $2))
    ORDER BY id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, request;

-- name: sign-up-request-drop
-- Drop a sign-up whose deciding failed unexpectedly, so that it cannot block the rest.
DELETE FROM sign_up_requests WHERE id = $1;

-- name: erasure-sign-up-requests
-- Drop sign-ups of an erased address still waiting to be decided.
DELETE FROM sign_up_requests WHERE lower(email) = lower($1);
