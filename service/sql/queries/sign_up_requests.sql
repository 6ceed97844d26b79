-- name: sign-up-requests-record
-- Count checked form sign-ups, any number at once (element k of every array is sign-up k), against
-- their clients' buckets ($1, windows $2, at most $3 hits), then each one that allows it against its
-- address's bucket ($4, windows $5, at most $6), and record those both allow ($7 addresses, $8 a JSON
-- array of requests) for deciding after the answer: one statement, the same for every address,
-- holding a bucket's row lock only while it runs. Sign-ups sharing a bucket are counted in their
-- order, as they would be one after another. One row per sign-up, in order: both counts (the
-- address's NULL when it was not counted) and the sign-up's id (NULL when a limit refused it).
WITH asked AS (
    SELECT * FROM unnest($1::text[], $2::float8[], $4::text[], $5::float8[], $7::text[])
        WITH ORDINALITY AS a(client_bucket, client_window, address_bucket, address_window, email, ord)
), client AS (
    INSERT INTO rate_limits AS r (bucket, window_start, hits)
    SELECT client_bucket, to_timestamp(client_window), count(*) FROM asked
    GROUP BY client_bucket, client_window ORDER BY client_bucket, client_window
    ON CONFLICT (bucket, window_start) DO UPDATE SET hits = r.hits + excluded.hits
    RETURNING r.bucket, r.window_start, r.hits
), client_counted AS (
    SELECT asked.*, client.hits - count(*) OVER bucket
                    + row_number() OVER (bucket ORDER BY asked.ord) AS client_hits
    FROM asked JOIN client ON client.bucket = asked.client_bucket
                          AND client.window_start = to_timestamp(asked.client_window)
    WINDOW bucket AS (PARTITION BY asked.client_bucket, asked.client_window)
), passed AS (
    SELECT * FROM client_counted WHERE client_hits <= $3
), address AS (
    INSERT INTO rate_limits AS r (bucket, window_start, hits)
    SELECT address_bucket, to_timestamp(address_window), count(*) FROM passed
    GROUP BY address_bucket, address_window ORDER BY address_bucket, address_window
    ON CONFLICT (bucket, window_start) DO UPDATE SET hits = r.hits + excluded.hits
    RETURNING r.bucket, r.window_start, r.hits
), address_counted AS (
    SELECT passed.ord, passed.email, address.hits - count(*) OVER bucket
                                     + row_number() OVER (bucket ORDER BY passed.ord) AS address_hits
    FROM passed JOIN address ON address.bucket = passed.address_bucket
                            AND address.window_start = to_timestamp(passed.address_window)
    WINDOW bucket AS (PARTITION BY passed.address_bucket, passed.address_window)
), allowed AS (
    -- The ids are drawn here, in the sign-ups' order, so that each answer learns its own and an
    -- address's sign-ups are decided in the order they came.
    SELECT ord, nextval(pg_get_serial_sequence('sign_up_requests', 'id')) AS id, email
    FROM (SELECT ord, email FROM address_counted WHERE address_hits <= $6 ORDER BY ord) AS in_order
), recorded AS (
    INSERT INTO sign_up_requests (id, email, request) OVERRIDING SYSTEM VALUE
    SELECT allowed.id, allowed.email, $8::jsonb -> (allowed.ord::int - 1) FROM allowed
)
SELECT client_counted.client_hits::int, address_counted.address_hits::int, allowed.id
FROM client_counted
LEFT JOIN address_counted ON address_counted.ord = client_counted.ord
LEFT JOIN allowed ON allowed.ord = client_counted.ord
ORDER BY client_counted.ord;

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
-- Queues a confirmation mail (composed by the worker) for each person with lists now waiting.
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
), asked AS (
    SELECT batch.ids[r.ord] AS id, r.* FROM batch CROSS JOIN LATERAL subscribers_request(batch.requests) AS r
), mailed AS (
    INSERT INTO system_mails (subscriber_id, kind, recipient, lists)
    SELECT person_id, 'confirm', person_email, waiting_names FROM asked
    WHERE cardinality(waiting_slugs) > 0
    ORDER BY ord
)
SELECT id, asked_email AS email, person_id, person_email, waiting_slugs, waiting_names FROM asked ORDER BY ord;

-- name: sign-up-request-drop
-- Drop a sign-up whose deciding failed unexpectedly, so that it cannot block the rest.
DELETE FROM sign_up_requests WHERE id = $1;

-- name: erasure-sign-up-requests
-- Drop sign-ups of an erased address still waiting to be decided.
DELETE FROM sign_up_requests WHERE lower(email) = lower($1);
