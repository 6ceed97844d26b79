-- Fewer index entries per reader, for imports (issue 14: 100,000 readers in 3 s).
--
-- Every new reader was written into ten indexes; an import of 100,000 spent most of its time
-- there. Four of them held nothing another one could not give (EXPLAIN of every query that
-- used them, on 100,000 readers, in the README's "Benchmarks"):
--
-- * subscribers_email_prefix_idx (lower(email) text_pattern_ops) repeated the unique index on
--   lower(email), which now uses that operator class itself: it still keeps one person per
--   address (the equality of text_pattern_ops is text's own), still arbitrates
--   ON CONFLICT (lower(email)), and now also serves the console's prefix search under any
--   collation. The constraint's name stays, so a duplicate is still reported the same way.
-- * subscribers_email_hash_idx served one rare query (lifting a suppression), which now finds
--   the reader by lower(email) instead: email_hash() is sha256 of lower(address), so both
--   name the same person.
-- * subscribers_status_idx had an entry for every reader; the queries that use it look for the
--   few who are not active (pending sign-ups to purge, the API's listing by status). Active
--   readers, nearly everyone and every imported reader, are now left out of it.
-- * subscribers_terms_idx (id) INCLUDE (agency, role) repeated the primary key, which now
--   carries agency and role itself, so an edition's report still reads them from the index
--   alone. The foreign keys that point at the primary key are dropped and added again around
--   the swap (the same definitions; adding them checks the existing rows once).

DROP INDEX subscribers_email_prefix_idx;
ALTER INDEX subscribers_email_key RENAME TO subscribers_email_key_old;
CREATE UNIQUE INDEX subscribers_email_key ON subscribers (lower(email) text_pattern_ops);
DROP INDEX subscribers_email_key_old;

DROP INDEX subscribers_email_hash_idx;

DROP INDEX subscribers_status_idx;
CREATE INDEX subscribers_status_idx ON subscribers (status)
    WHERE status IN ('pending', 'unsubscribed', 'bounced', 'complained');

ALTER TABLE bounce_events DROP CONSTRAINT bounce_events_subscriber_id_fkey;
ALTER TABLE edition_unsubscribes DROP CONSTRAINT edition_unsubscribes_subscriber_id_fkey;
ALTER TABLE system_mails DROP CONSTRAINT system_mails_subscriber_id_fkey;
ALTER TABLE subscribers DROP CONSTRAINT subscribers_pkey;
DROP INDEX subscribers_terms_idx;
ALTER TABLE subscribers ADD CONSTRAINT subscribers_pkey PRIMARY KEY (id) INCLUDE (agency, role);
ALTER TABLE bounce_events ADD CONSTRAINT bounce_events_subscriber_id_fkey
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE;
ALTER TABLE edition_unsubscribes ADD CONSTRAINT edition_unsubscribes_subscriber_id_fkey
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE;
ALTER TABLE system_mails ADD CONSTRAINT system_mails_subscriber_id_fkey
    FOREIGN KEY (subscriber_id) REFERENCES subscribers (id) ON DELETE CASCADE;

-- Import staging: the merge now finds each staged row's person with one join, in the statement
-- that writes their lists and consent records, instead of noting the person on every staged
-- row first (an UPDATE of 100,000 rows), so the column, the half-empty pages kept for that
-- update and the (import, line) index that COPY filled row by row go.
ALTER TABLE import_staging DROP COLUMN subscriber_id;
DROP INDEX import_staging_line_key;
ALTER TABLE import_staging RESET (fillfactor);
