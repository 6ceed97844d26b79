-- name: purge-pending-subscribers
-- People who never confirmed and have not asked again for $1 days: delete them (and their
-- unconfirmed consent records and queued mail, by cascade). Returns how many.
WITH gone AS (
    DELETE FROM subscribers
    WHERE status = 'pending' AND confirmed_at IS NULL AND updated_at < now() - make_interval(days => $1)
    RETURNING id
)
SELECT count(*) FROM gone;

-- name: purge-pending-subscriptions
-- Other people's list requests never confirmed within $1 days: forget the request.
WITH gone AS (
    DELETE FROM subscriptions
    WHERE status = 'pending' AND updated_at < now() - make_interval(days => $1)
    RETURNING 1
)
SELECT count(*) FROM gone;
