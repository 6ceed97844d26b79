-- name: user-insert
-- Create an operator account (email already lower-cased); a taken email trips users_email_key.
INSERT INTO users (email, role, password_hash)
VALUES ($1, $2, $3)
RETURNING id, email, role, disabled, created_at, last_sign_in_at;

-- name: user-by-email
-- The account an email signs in as, with its password hash (disabled ones too: the caller decides).
SELECT id, email, role, password_hash, disabled
FROM users
WHERE email = $1;

-- name: user-list
-- Every account, oldest first; never the password hashes.
SELECT id, email, role, disabled, created_at, last_sign_in_at
FROM users
ORDER BY id;

-- name: user-disable
-- Disable an account by email; its sessions are deleted by the caller in the same transaction.
UPDATE users SET disabled = true
WHERE email = $1
RETURNING id, email, role;

-- name: user-enable
-- Let a disabled account sign in again.
UPDATE users SET disabled = false
WHERE id = $1
RETURNING id, email, role;

-- name: user-set-role
-- Change an account's role; returns the old role so the caller can tell whether anything changed.
UPDATE users u SET role = $2
FROM (SELECT id, role FROM users WHERE id = $1 FOR UPDATE) old
WHERE u.id = old.id
RETURNING u.id, u.email, old.role AS old_role, u.role;

-- name: user-get
-- One account by id, without its password hash.
SELECT id, email, role, disabled, created_at, last_sign_in_at
FROM users
WHERE id = $1;

-- name: user-signed-in
-- Record a successful sign-in.
UPDATE users SET last_sign_in_at = now() WHERE id = $1;
