-- name: erasure-suppress
-- Keep only the hash of an erased address, so no import or form can bring it back; an
-- earlier suppression of the same address loses its clear-text address and detail.
INSERT INTO suppressions (email_hash, email, reason, detail)
VALUES (email_hash($1), NULL, 'erasure', NULL)
ON CONFLICT (email_hash) DO UPDATE SET email = NULL, reason = 'erasure', detail = NULL;

-- name: erasure-scrub-deliveries
-- Forget SMTP replies and message ids of the person's copies (they can name the address);
-- the rows stay, unlinked (deliveries has no foreign keys), so the editions' counts stay right.
UPDATE deliveries SET subscriber_id = NULL, last_reply = NULL, message_id = NULL, updated_at = now()
WHERE subscriber_id = $1;

-- name: erasure-system-mails
-- Drop the person's confirmation and other system mails: the stored message holds the address.
DELETE FROM system_mails WHERE subscriber_id = $1 OR lower(recipient) = lower($2);

-- name: erasure-bounce-events
-- Drop bounce events about the address, including ones that never matched the person.
DELETE FROM bounce_events WHERE subscriber_id = $1 OR email_hash = email_hash($2);

-- name: erasure-subscriber
-- Delete the person; subscriptions, consents and edition unsubscribes go with them (cascade).
DELETE FROM subscribers WHERE id = $1;
