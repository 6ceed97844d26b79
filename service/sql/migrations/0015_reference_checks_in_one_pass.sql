-- Reference checks of subscriptions and consent records: one pass when every person named is new
-- or already locked by this transaction.
--
-- The statement-level checks of migration 0009 read each named person twice: once to lock the
-- people this transaction did not write (FOR KEY SHARE, as a foreign key's check locks them), once
-- to count that every one exists. An import's batch names only people it has just created, whom
-- nobody else can see, let alone delete: the lock pass then locked nothing, and the two passes were
-- a third of the time its subscriptions and consent records took (issue 14). Its merge at the end
-- names people it locked itself beforehand (FOR NO KEY UPDATE), whom nobody else can delete
-- either: locking them again changed nothing.
--
-- Now one pass counts the people found and how many of them are neither written nor locked by
-- this transaction (a visible row whose xmax is this transaction's id is one it locked: one it
-- deleted or updated would not be visible). Only those are locked, as before; when the lock pass
-- locks fewer of them than the first pass counted (one was deleted in between), the people are
-- counted again after the lock, so a person deleted before the lock is missing and the statement
-- is refused, as before. People this transaction wrote or holds locked cannot be deleted by anyone
-- else before it ends, so counting them without a new lock is as good as counting them after one.
-- Same guarantees, same errors.

-- Every named person must exist, locked FOR KEY SHARE unless this transaction wrote or holds them
-- (one pass, see above); refused as the foreign key ``constraint_name`` of ``child`` would refuse it.
-- Shared by the subscriptions' and the consent records' checks.
CREATE FUNCTION check_people_referenced(keys bigint[], child text, constraint_name text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    me      xid := pg_current_xact_id()::xid;
    present bigint;
    others  bigint;
    locked  bigint;
BEGIN
    SELECT count(*), count(*) FILTER (WHERE p.xmin <> me AND p.xmax <> me) INTO present, others
    FROM subscribers p WHERE p.id = ANY (keys);
    IF others > 0 THEN
        PERFORM FROM subscribers p WHERE p.id = ANY (keys) AND p.xmin <> me AND p.xmax <> me FOR KEY SHARE OF p;
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
    me   xid := pg_current_xact_id()::xid;
    keys bigint[];
BEGIN
    PERFORM check_people_referenced(
        ARRAY(SELECT DISTINCT subscriber_id FROM new_rows WHERE subscriber_id IS NOT NULL),
        'subscriptions', 'subscriptions_subscriber_id_fkey');
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

-- The consent records' check keeps migration 0013's path for a statement naming one person.
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
    PERFORM check_people_referenced(keys, 'consents', 'consents_subscriber_id_fkey');
    RETURN NULL;
END
$$;
