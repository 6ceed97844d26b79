-- name: statement-timeout-set-local
-- Bound every later statement of the current transaction (SET LOCAL): $1 is milliseconds, as text.
SELECT set_config('statement_timeout', $1, true);
