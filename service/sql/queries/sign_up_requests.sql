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

-- name: sign-up-requests-left-behind
-- Up to $2 sign-ups left waiting longer than $1 seconds (their process died before deciding them),
-- oldest first, for sign-up-requests-decide.
SELECT id FROM sign_up_requests
WHERE created_at < now() - make_interval(secs => $1)
ORDER BY id
LIMIT $2;

-- name: sign-up-requests-decide
-- Take the sign-ups $1 that no other transaction holds, one per address (the oldest: the rest
-- wait for the next batch), and ask for all of them in the same statement, inside the caller's
-- transaction (subscribers_request(), migration 0014: the people, their lists, their consents).
-- One row per sign-up taken: its id, the address asked for, and the person and the lists now
-- waiting for confirmation, person NULL when the address is suppressed.
WITH held AS (
    SELECT id, email FROM sign_up_requests WHERE id = ANY ($1::bigint[]) FOR UPDATE SKIP LOCKED
), taken AS (
    DELETE FROM sign_up_requests r
    USING (SELECT DISTINCT ON (lower(email)) id FROM held ORDER BY lower(email), id) AS first
    WHERE r.id = first.id
    RETURNING r.id, r.request
), batch AS (
    SELECT array_agg(id ORDER BY id) AS ids, jsonb_agg(request ORDER BY id) AS requests FROM taken
)
SELECT batch.ids[asked.ord] AS id, asked.asked_email AS email, asked.person_id, asked.person_email,
       asked.waiting_slugs, asked.waiting_names
FROM batch CROSS JOIN LATERAL subscribers_request(batch.requests) AS asked;

-- name: sign-up-request-drop
-- Drop a sign-up whose deciding failed unexpectedly, so that it cannot block the rest.
DELETE FROM sign_up_requests WHERE id = $1;

-- name: erasure-sign-up-requests
-- Drop sign-ups of an erased address still waiting to be decided.
DELETE FROM sign_up_requests WHERE lower(email) = lower($1);
