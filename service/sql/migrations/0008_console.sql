-- The operator console (DESIGN.md "Operator console"): what its pages need to answer in well
-- under 200 ms with 100,000 readers and 1,000,000 copies (bench/console.py).

-- An edition's copies by status (progress on the dashboard, counts on its page) are read from
-- the unique index alone once it carries the status. A status change never was a HOT update
-- (status is in deliveries_due_idx's predicate), so every index gets a new entry on it anyway:
-- carrying the status costs the send loop nothing. The constraint keeps its name. Rebuilding
-- the index locks deliveries for as long as that takes (seconds per million copies).
ALTER TABLE deliveries
    DROP CONSTRAINT deliveries_edition_subscriber_key,
    ADD CONSTRAINT deliveries_edition_subscriber_key UNIQUE (edition_id, subscriber_id) INCLUDE (status);

-- Copies sent on one day: today's figure is counted live from here, past days once (below).
CREATE INDEX deliveries_sent_at_idx ON deliveries (sent_at) WHERE status = 'sent';
-- Bounces and complaints received on one day, and the newest reports first.
CREATE INDEX bounce_events_created_idx ON bounce_events (created_at);
-- Reports that no reader could be found for, newest first.
CREATE INDEX bounce_events_unmatched_idx ON bounce_events (id) WHERE subscriber_id IS NULL;
-- Unsubscribes on one day.
CREATE INDEX consents_unsubscribe_created_idx ON consents (created_at) WHERE action = 'unsubscribe';
-- An edition's report joins its copies to their readers' organisation and role: read from this
-- index alone, the join builds its hash from a few megabytes instead of the whole table.
CREATE INDEX subscribers_terms_idx ON subscribers (id) INCLUDE (agency, role);
-- Finding a reader by the start of their address or name (LIKE 'pat%' under any collation).
CREATE INDEX subscribers_email_prefix_idx ON subscribers (lower(email) text_pattern_ops);
CREATE INDEX subscribers_name_prefix_idx ON subscribers (lower(name) text_pattern_ops);

-- The dashboard's last 30 days: a finished day's figures do not change (each counts events by
-- the time they happened), so each day is counted once, when first shown after it ended, and
-- kept; only today is counted live. Figures are totals, not personal data: erasure keeps them.
CREATE TABLE daily_figures (
    day          date PRIMARY KEY,
    sent         bigint NOT NULL,
    bounced      bigint NOT NULL,
    complained   bigint NOT NULL,
    unsubscribed bigint NOT NULL,
    counted_at   timestamptz NOT NULL DEFAULT now()
);

-- Readers by organisation and by role at the end of each finished month, counted once, when first
-- shown after the month ended, and kept (term NULL: none given); the month under way is counted live.
CREATE TABLE monthly_readers (
    month      date NOT NULL CHECK (extract(day FROM month) = 1),
    is_role    boolean NOT NULL,
    term       text,
    readers    bigint NOT NULL,
    counted_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX monthly_readers_key ON monthly_readers (month, is_role, coalesce(term, ''));

-- A list an editor archived: hidden from the form (no longer public) and shown apart in the
-- console; its readers keep their subscriptions, and it can be restored.
ALTER TABLE lists ADD COLUMN archived_at timestamptz;
