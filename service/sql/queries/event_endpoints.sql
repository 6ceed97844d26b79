-- name: event-endpoint-insert
-- Register an endpoint for some event types; its secret is returned once, by the caller.
INSERT INTO event_endpoints (url, events, description, secret) VALUES ($1, $2, $3, $4)
RETURNING id, url, events, description, created_at;

-- name: event-endpoint-page
-- Endpoints in id order after a cursor, never with their secrets.
SELECT id, url, events, description, created_at FROM event_endpoints
WHERE id > $1 ORDER BY id LIMIT $2;

-- name: event-endpoint-delete
-- Forget an endpoint and its messages, sent or not.
DELETE FROM event_endpoints WHERE id = $1 RETURNING id;

-- name: event-endpoint-exists
-- Whether an endpoint exists (to tell an empty listing from an unknown endpoint).
SELECT true FROM event_endpoints WHERE id = $1;

-- name: event-wanted
-- Whether any endpoint listens for an event type (so nothing is computed for nobody).
SELECT EXISTS (SELECT 1 FROM event_endpoints WHERE $1 = ANY (events));
