-- name: event-attempt-insert
-- Record one try: the HTTP status (NULL without an answer) and the start of the reply or what went wrong.
INSERT INTO event_attempts (message_id, attempt, status, reply) VALUES ($1, $2, $3, $4)
ON CONFLICT (message_id, attempt) DO NOTHING;
