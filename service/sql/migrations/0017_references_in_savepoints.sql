-- The reference checks of subscriptions and consent records know people written from a savepoint.
--
-- Migration 0015 counts a named person as this transaction's own when their row's xmin (or xmax)
-- is the transaction's id, and locks the others FOR KEY SHARE. A row written from a savepoint
-- carries the savepoint's own transaction id instead, so every person an import's batch created
-- (each batch of new people runs from a savepoint: subscribers-import-ids) was taken for
-- someone else's and locked: 100,000 row locks, 5.4 MB of WAL and a tenth of the import's
-- database time for 100,000 new people.
--
-- The checks now also count as this transaction's own a person written by the (sub)transaction
-- that wrote the rows being checked: the xmin of one of those rows, read back by its key. Nobody
-- else can see, let alone delete, a person written by a transaction still running, so, as in
-- 0015, counting them without a lock is as good as counting them after one. A person written in
-- an earlier savepoint is still locked, as before: the lock is then redundant, never missing.
-- Same guarantees, same errors.
--
-- The read-back is planned afresh at every call (it reads the statement's transition table):
-- about 40 µs of PostgreSQL's CPU, which a sign-up's statement of a few people paid for nothing
-- (bench/http.py: 153-173 µs per sign-up without it, 196-224 with it on every statement). It is
-- made only for a statement naming at least 64 people, where locking those written from a
-- savepoint would cost more; a smaller one locks them, as before.

CREATE FUNCTION check_people_referenced(keys bigint[], child text, constraint_name text, writer xid)
    RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    me      xid := pg_current_xact_id()::xid;
    also    xid := coalesce(writer, me);  -- none given (or found): only the transaction's own id counts
    present bigint;
    others  bigint;
    locked  bigint;
BEGIN
    SELECT count(*), count(*) FILTER (WHERE p.xmin <> me AND p.xmin <> also AND p.xmax <> me AND p.xmax <> also)
    INTO present, others
    FROM subscribers p WHERE p.id = ANY (keys);
    IF others > 0 THEN
        PERFORM FROM subscribers p
        WHERE p.id = ANY (keys) AND p.xmin <> me AND p.xmin <> also AND p.xmax <> me AND p.xmax <> also
        FOR KEY SHARE OF p;
        GET DIAGNOSTICS locked = ROW_COUNT;
        IF locked <> others THEN
            present := (SELECT count(*) FROM subscribers p WHERE p.id = ANY (keys));
        END IF;
    END IF;
    IF present < cardinality(keys) THEN
        PERFORM raise_foreign_key_violation(child, constraint_name, 'subscriber_id',
            (SELECT k::text FROM unnest(keys) k WHERE NOT EXISTS (SELECT FROM subscribers p WHERE p.id = k) LIMIT 1),
            'subscribers');
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION subscriptions_check_references() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    me     xid := pg_current_xact_id()::xid;
    keys   bigint[];
    writer xid;
BEGIN
    keys := ARRAY(SELECT DISTINCT subscriber_id FROM new_rows WHERE subscriber_id IS NOT NULL);
    IF cardinality(keys) >= 64 THEN
        SELECT s.xmin INTO writer
        FROM (SELECT list_id, subscriber_id FROM new_rows LIMIT 1) n
        JOIN subscriptions s ON s.list_id = n.list_id AND s.subscriber_id = n.subscriber_id;
    END IF;
    PERFORM check_people_referenced(keys, 'subscriptions', 'subscriptions_subscriber_id_fkey', writer);
    keys := ARRAY(SELECT DISTINCT list_id FROM new_rows WHERE list_id IS NOT NULL);
    PERFORM FROM lists p WHERE p.id = ANY (keys) AND p.xmin <> me FOR KEY SHARE OF p;
    IF (SELECT count(*) FROM lists p WHERE p.id = ANY (keys)) < cardinality(keys) THEN
        PERFORM raise_foreign_key_violation('subscriptions', 'subscriptions_list_id_fkey', 'list_id',
            (SELECT k::text FROM unnest(keys) k WHERE NOT EXISTS (SELECT FROM lists p WHERE p.id = k) LIMIT 1),
            'lists');
    END IF;
    RETURN NULL;
END
$$;

-- The one-person path of migrations 0013 and 0015 is kept as it was.
CREATE OR REPLACE FUNCTION consents_check_references() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    me     xid := pg_current_xact_id()::xid;
    keys   bigint[];
    person bigint;
    mine   boolean;
    writer xid;
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
    IF cardinality(keys) >= 64 THEN
        SELECT c.xmin INTO writer
        FROM (SELECT subscriber_id, id FROM new_rows LIMIT 1) n
        JOIN consents c ON c.subscriber_id = n.subscriber_id AND c.id = n.id;
    END IF;
    PERFORM check_people_referenced(keys, 'consents', 'consents_subscriber_id_fkey', writer);
    RETURN NULL;
END
$$;

DROP FUNCTION check_people_referenced(bigint[], text, text);
