-- name: sign-up-request-insert
-- Record a checked form sign-up for deciding after the answer: the same one statement for every address.
INSERT INTO sign_up_requests (email, request) VALUES ($1, $2) RETURNING id;

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
