-- name: sign-in-blocked
-- Whether any of the keys (an account, a client address) is still made to wait after failures.
SELECT EXISTS (
    SELECT 1 FROM sign_in_failures
    WHERE key = ANY($1::text[]) AND blocked_until > now()
);

-- name: sign-in-failed
-- Count a failure against a key. A window older than 15 minutes starts again; from the
-- $2-th failure on, the key waits 30 s · 2^(failures - $2), at most 15 minutes, before it
-- may try again.
INSERT INTO sign_in_failures AS f (key, failures)
VALUES ($1, 1)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN f.window_start < now() - interval '15 minutes' THEN 1 ELSE f.failures + 1 END,
    window_start = CASE WHEN f.window_start < now() - interval '15 minutes' THEN now() ELSE f.window_start END,
    blocked_until = CASE
        WHEN f.window_start >= now() - interval '15 minutes' AND f.failures + 1 >= $2
        THEN now() + least(interval '15 minutes', make_interval(secs => 30 * power(2, f.failures + 1 - $2)))
        ELSE f.blocked_until
    END;

-- name: sign-in-succeeded
-- A correct password clears the account's failures (not the client address's).
DELETE FROM sign_in_failures WHERE key = $1;

-- name: sign-in-failures-forget
-- Housekeeping on each successful sign-in: windows that ended and waits that are over say
-- nothing any more (and typed-in addresses should not pile up).
DELETE FROM sign_in_failures
WHERE window_start < now() - interval '15 minutes' AND (blocked_until IS NULL OR blocked_until < now());
