-- Bounce accounting (DESIGN.md "Delivery guarantees"):
-- * delay warnings ('delayed') and reports no rule could classify ('unknown') are recorded
--   for review but are never bounces;
-- * a copy (delivery) counts at most one bounce, however many reports arrive for it:
--   the one counted event per copy is marked, and the database refuses a second;
-- * a provider event (SES feedbackId, Postmark ID, SendGrid sg_event_id, Mailgun id) is
--   acted on once: replaying it, even with a valid signature, inserts nothing.

ALTER TABLE bounce_events DROP CONSTRAINT bounce_events_kind_check;
ALTER TABLE bounce_events ADD CONSTRAINT bounce_events_kind_check
    CHECK (kind IN ('hard', 'soft', 'complaint', 'delayed', 'unknown'));

ALTER TABLE bounce_events ADD COLUMN counted boolean NOT NULL DEFAULT false;
ALTER TABLE bounce_events ADD COLUMN event_id text CHECK (length(event_id) <= 300);

-- Events recorded before: the first bounce of each copy is the one that counted.
UPDATE bounce_events b SET counted = true
WHERE b.kind IN ('hard', 'soft')
  AND (b.delivery_id IS NULL
       OR b.id = (SELECT min(b2.id) FROM bounce_events b2
                  WHERE b2.delivery_id = b.delivery_id AND b2.kind IN ('hard', 'soft')));

CREATE UNIQUE INDEX bounce_events_counted_once_idx ON bounce_events (delivery_id) WHERE counted;
CREATE UNIQUE INDEX bounce_events_provider_event_idx ON bounce_events (source, event_id, email_hash)
    WHERE event_id IS NOT NULL;
