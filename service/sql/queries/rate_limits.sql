-- name: rate-limit-purge
-- Forget rate-limit windows older than a day.
DELETE FROM rate_limits WHERE window_start < now() - interval '1 day';

-- name: rate-limit-hit
-- Count one attempt in a fixed window shared by every replica; returns the count so far.
INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, to_timestamp($2), 1)
ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1
RETURNING hits;

-- name: rate-limit-forget
-- Drop a bucket's windows (erasure: the bucket is derived from the address).
DELETE FROM rate_limits WHERE bucket = $1;
