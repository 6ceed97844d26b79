-- name: console-session-insert
-- Open a session for a user who just signed in.
INSERT INTO console_sessions (user_id)
VALUES ($1)
RETURNING id;

-- name: console-session-operator
-- The operator behind a live session: the session exists, was used within the idle timeout
-- (seconds) and its user is enabled. Marks it used, at most every 30 seconds, to slide the timeout.
WITH live AS (
    SELECT s.id, u.id AS user_id, u.email, u.role, s.last_seen_at
    FROM console_sessions s
    JOIN users u ON u.id = s.user_id
    WHERE s.id = $1
      AND NOT u.disabled
      AND s.last_seen_at > now() - make_interval(secs => $2)
), touched AS (
    UPDATE console_sessions SET last_seen_at = now()
    WHERE id IN (SELECT id FROM live WHERE last_seen_at < now() - interval '30 seconds')
)
SELECT user_id, email, role FROM live;

-- name: console-session-delete
-- Sign one session out.
DELETE FROM console_sessions WHERE id = $1;

-- name: console-sessions-delete-for-user
-- Sign a user out everywhere (disabled, or their role changed).
DELETE FROM console_sessions WHERE user_id = $1;

-- name: console-sessions-expire
-- Drop sessions idle for longer than the timeout (seconds): housekeeping on sign-in.
DELETE FROM console_sessions WHERE last_seen_at < now() - make_interval(secs => $1);
