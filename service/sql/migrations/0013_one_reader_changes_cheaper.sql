-- The reference check of a consent record about one person, at a third of its cost.
--
-- The consent record's reference check (consents_check_references(), migration 0009) looked
-- the statement's keys up with `id = ANY (keys)`. PL/pgSQL keeps a generic plan for such a
-- query only when it is no dearer than a plan made for the values at hand, and with the
-- array's length unknown it never is: every consent record paid for planning two queries,
-- about 60 µs of a one-click's 370 µs of server time. Every writer but the import writes one
-- person's records at a time, so one key gets its own path: equality on one value, whose
-- generic plan is kept. The guarantees are those of the set-based path, which every statement
-- naming two or more people still takes: a missing person is refused with the same error, a
-- person this transaction did not write is locked FOR KEY SHARE first (a delete waits, then
-- cascades), one it wrote is not locked again.
CREATE OR REPLACE FUNCTION consents_check_references() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    me     xid := pg_current_xact_id()::xid;
    keys   bigint[];
    person bigint;
    mine   boolean;
BEGIN
    keys := ARRAY(SELECT DISTINCT subscriber_id FROM new_rows WHERE subscriber_id IS NOT NULL);
    IF cardinality(keys) = 1 THEN
        person := keys[1];
        -- Nearly always written by this transaction already (the change the record is about).
        SELECT p.xmin = me INTO mine FROM subscribers p WHERE p.id = person;
        IF mine IS NOT NULL AND NOT mine THEN
            PERFORM FROM subscribers p WHERE p.id = person FOR KEY SHARE OF p;
            IF NOT FOUND THEN
                mine := NULL;  -- deleted since the look above
            END IF;
        END IF;
        IF mine IS NULL THEN
            PERFORM raise_foreign_key_violation('consents', 'consents_subscriber_id_fkey', 'subscriber_id',
                                                person::text, 'subscribers');
        END IF;
        RETURN NULL;
    END IF;
    PERFORM FROM subscribers p WHERE p.id = ANY (keys) AND p.xmin <> me FOR KEY SHARE OF p;
    IF (SELECT count(*) FROM subscribers p WHERE p.id = ANY (keys)) < cardinality(keys) THEN
        PERFORM raise_foreign_key_violation('consents', 'consents_subscriber_id_fkey', 'subscriber_id',
            (SELECT k::text FROM unnest(keys) k WHERE NOT EXISTS (SELECT FROM subscribers p WHERE p.id = k) LIMIT 1),
            'subscribers');
    END IF;
    RETURN NULL;
END
$$;
