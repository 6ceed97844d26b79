-- name: event-message-page
-- One endpoint's messages, newest first, before a cursor (0: from the newest), optionally of one status.
-- Each carries its tries in order (event_attempts).
SELECT m.id, m.webhook_id, m.type, m.status, m.attempts, m.last_status, m.last_error, m.created_at,
       CASE WHEN m.status = 'pending' THEN m.next_attempt_at END AS next_attempt_at, m.delivered_at,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('attempt', a.attempt, 'tried_at', a.tried_at,
                                                     'status', a.status, 'reply', a.reply)
                                  ORDER BY a.attempt), '[]'::jsonb)
        FROM event_attempts a WHERE a.message_id = m.id) AS tries
FROM event_messages m
WHERE m.endpoint_id = $1 AND ($2 = 0 OR m.id < $2) AND ($3::text IS NULL OR m.status = $3)
ORDER BY m.id DESC LIMIT $4;

-- name: event-emit
-- Record an event for every endpoint that listens for its type, inside the causing transaction.
-- The data comes as JSON text, so any connection can emit (with or without a jsonb codec).
INSERT INTO event_messages (endpoint_id, webhook_id, type, data)
SELECT e.id, $2, $1, $3::text::jsonb FROM event_endpoints e WHERE $1 = ANY (e.events);

-- name: event-emit-subscriber
-- The same for an event about a reader: the reader as they are now, plus the event's own fields
-- (emit_subscriber_event(), migration 0011).
SELECT emit_subscriber_event($1, $2, $3, $4::text::jsonb);

-- name: event-forget-subscriber
-- Erasure: take the address, the name and any bounce diagnostic (it may quote the address) out of
-- every message about the person, sent or not.
UPDATE event_messages
SET data = (data #- '{subscriber,email}' #- '{subscriber,name}') - 'diagnostic'
WHERE (data -> 'subscriber' ->> 'id')::bigint = $1;

-- name: event-claim
-- Lease due messages: a claim counts a try and moves the next try past the lease, so a message
-- whose worker died is due again after it. Returns what signing and sending need.
WITH due AS (
    SELECT id FROM event_messages
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE event_messages m
SET attempts = m.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
FROM due, event_endpoints e
WHERE m.id = due.id AND e.id = m.endpoint_id
RETURNING m.id, m.webhook_id, m.type, m.data, m.created_at, m.attempts, e.url, e.secret;

-- name: event-delivered
-- The endpoint answered 2xx.
UPDATE event_messages
SET status = 'delivered', delivered_at = now(), last_status = $2, last_error = NULL
WHERE id = $1 AND status = 'pending';

-- name: event-retry
-- Not delivered this time: try again after the delay. Only the latest claim's result counts.
UPDATE event_messages
SET next_attempt_at = now() + make_interval(secs => $3), last_status = $4, last_error = $5
WHERE id = $1 AND attempts = $2 AND status = 'pending';

-- name: event-failed
-- Not delivered and the tries are used up: failed for good, shown in the attempts listing.
UPDATE event_messages
SET status = 'failed', last_status = $3, last_error = $4
WHERE id = $1 AND attempts = $2 AND status = 'pending';

-- name: event-purge
-- Delivered and failed messages are kept for a while for the attempts listing, then dropped.
DELETE FROM event_messages WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1);
