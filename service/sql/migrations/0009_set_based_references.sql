-- References checked once per statement instead of once per row.
--
-- An import of 100,000 readers writes 100,000 subscribers, about 200,000 subscriptions and
-- 100,000 consent records; the foreign keys below fired one trigger, one query, per row:
-- 3.5 of the merge's 8.9 s. The triggers here keep the same guarantees for every writer, set-based:
--
-- * inserting a row that names a missing subscriber, list, agency or role is refused with
--   SQLSTATE 23503 (foreign_key_violation) and the old constraint's name, checked once per
--   statement against all the statement's rows; changing such a column later is checked per row,
--   and only when the value changes (as a foreign key does);
-- * what a new row names is locked FOR KEY SHARE until the transaction ends, as a foreign key's
--   check locks it, so a concurrent delete waits and then sees the new row (and cascades to it
--   or is refused); a row deleted before the lock makes the check fail;
-- * deleting a subscriber or a list deletes its subscriptions (and a subscriber's consent
--   records) in the same statement; renaming an agency or role slug renames it on its people;
--   deleting an agency or role that people still name, changing a referenced id, or truncating
--   a table that is still referenced is refused.
--
-- The cascade sees rows committed while the delete waited because each statement of a
-- READ COMMITTED transaction (every Letterbox transaction) takes a fresh snapshot. Run by hand
-- under REPEATABLE READ, a delete racing an insert that commits first could miss the new row,
-- where the foreign key raised a serialization failure.

ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_subscriber_id_fkey,
                          DROP CONSTRAINT subscriptions_list_id_fkey;
ALTER TABLE consents DROP CONSTRAINT consents_subscriber_id_fkey;
ALTER TABLE subscribers DROP CONSTRAINT subscribers_agency_fkey,
                        DROP CONSTRAINT subscribers_role_fkey;

-- Refuse a reference to a key the parent does not have, as a foreign key would.
CREATE FUNCTION raise_foreign_key_violation(child text, constraint_name text, child_column text, missing text,
                                            parent text) RETURNS void
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', child, constraint_name
        USING ERRCODE = 'foreign_key_violation', CONSTRAINT = constraint_name, TABLE = child,
              DETAIL = format('Key (%s)=(%s) is not present in table "%s".', child_column, missing, parent);
END
$$;

-- Statement-level, after INSERT (transition table new_rows): every key the new rows name must
-- exist. The distinct keys are gathered into one array and looked up with one index scan
-- (= ANY), instead of one query per row. They are locked FOR KEY SHARE first, as a foreign
-- key's check locks them, so that a concurrent delete waits for this transaction and then sees
-- its rows (and cascades to them); a key deleted before the lock is then missing. Rows this
-- transaction wrote itself are not locked again: no one else can delete them before it ends
-- (a delete reaches them only through the version this transaction replaced and holds).
CREATE FUNCTION subscriptions_check_references() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    me   xid := pg_current_xact_id()::xid;
    keys bigint[];
BEGIN
    keys := ARRAY(SELECT DISTINCT subscriber_id FROM new_rows WHERE subscriber_id IS NOT NULL);
    PERFORM FROM subscribers p WHERE p.id = ANY (keys) AND p.xmin <> me FOR KEY SHARE OF p;
    IF (SELECT count(*) FROM subscribers p WHERE p.id = ANY (keys)) < cardinality(keys) THEN
        PERFORM raise_foreign_key_violation('subscriptions', 'subscriptions_subscriber_id_fkey', 'subscriber_id',
            (SELECT k::text FROM unnest(keys) k WHERE NOT EXISTS (SELECT FROM subscribers p WHERE p.id = k) LIMIT 1),
            'subscribers');
    END IF;
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

CREATE FUNCTION consents_check_references() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    me   xid := pg_current_xact_id()::xid;
    keys bigint[];
BEGIN
    keys := ARRAY(SELECT DISTINCT subscriber_id FROM new_rows WHERE subscriber_id IS NOT NULL);
    PERFORM FROM subscribers p WHERE p.id = ANY (keys) AND p.xmin <> me FOR KEY SHARE OF p;
    IF (SELECT count(*) FROM subscribers p WHERE p.id = ANY (keys)) < cardinality(keys) THEN
        PERFORM raise_foreign_key_violation('consents', 'consents_subscriber_id_fkey', 'subscriber_id',
            (SELECT k::text FROM unnest(keys) k WHERE NOT EXISTS (SELECT FROM subscribers p WHERE p.id = k) LIMIT 1),
            'subscribers');
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION subscribers_check_references() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    me   xid := pg_current_xact_id()::xid;
    keys text[];
BEGIN
    keys := ARRAY(SELECT DISTINCT agency FROM new_rows WHERE agency IS NOT NULL);
    PERFORM FROM agencies p WHERE p.slug = ANY (keys) AND p.xmin <> me FOR KEY SHARE OF p;
    IF (SELECT count(*) FROM agencies p WHERE p.slug = ANY (keys)) < cardinality(keys) THEN
        PERFORM raise_foreign_key_violation('subscribers', 'subscribers_agency_fkey', 'agency',
            (SELECT k::text FROM unnest(keys) k WHERE NOT EXISTS (SELECT FROM agencies p WHERE p.slug = k) LIMIT 1),
            'agencies');
    END IF;
    keys := ARRAY(SELECT DISTINCT role FROM new_rows WHERE role IS NOT NULL);
    PERFORM FROM roles p WHERE p.slug = ANY (keys) AND p.xmin <> me FOR KEY SHARE OF p;
    IF (SELECT count(*) FROM roles p WHERE p.slug = ANY (keys)) < cardinality(keys) THEN
        PERFORM raise_foreign_key_violation('subscribers', 'subscribers_role_fkey', 'role',
            (SELECT k::text FROM unnest(keys) k WHERE NOT EXISTS (SELECT FROM roles p WHERE p.slug = k) LIMIT 1),
            'roles');
    END IF;
    RETURN NULL;
END
$$;

-- Row-level, after UPDATE OF agency or role when one changed (an import that moves 100,000
-- people to another agency runs this 100,000 times, so its SQL is static and its plans kept).
CREATE FUNCTION subscribers_check_updated_references() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.agency IS NOT NULL AND NEW.agency IS DISTINCT FROM OLD.agency THEN
        PERFORM FROM agencies p WHERE p.slug = NEW.agency FOR KEY SHARE OF p;
        IF NOT FOUND THEN
            PERFORM raise_foreign_key_violation('subscribers', 'subscribers_agency_fkey', 'agency', NEW.agency,
                                                'agencies');
        END IF;
    END IF;
    IF NEW.role IS NOT NULL AND NEW.role IS DISTINCT FROM OLD.role THEN
        PERFORM FROM roles p WHERE p.slug = NEW.role FOR KEY SHARE OF p;
        IF NOT FOUND THEN
            PERFORM raise_foreign_key_violation('subscribers', 'subscribers_role_fkey', 'role', NEW.role, 'roles');
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- Row-level, after UPDATE OF the column when its value changed (a subscription's or consent
-- record's subscriber or list, which Letterbox never changes): the new value must be a key of
-- the parent. Arguments: column, parent table, parent key column, constraint name.
CREATE FUNCTION check_updated_reference() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    found_key boolean;
BEGIN
    EXECUTE format('SELECT true FROM %I p WHERE p.%I = ($1).%I FOR KEY SHARE OF p', TG_ARGV[1], TG_ARGV[2], TG_ARGV[0])
        INTO found_key USING NEW;
    IF found_key IS NULL THEN
        PERFORM raise_foreign_key_violation(TG_TABLE_NAME, TG_ARGV[3], TG_ARGV[0], to_jsonb(NEW) ->> TG_ARGV[0],
                                            TG_ARGV[1]);
    END IF;
    RETURN NULL;
END
$$;

-- Statement-level, after DELETE on a parent: delete the child rows naming the deleted keys
-- (transition table old_rows). Arguments: child table, child column, parent key column.
CREATE FUNCTION delete_referencing_rows() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DELETE FROM %I c WHERE c.%I IN (SELECT %I FROM old_rows)', TG_ARGV[0], TG_ARGV[1], TG_ARGV[2]);
    RETURN NULL;
END
$$;

-- Row-level, after DELETE on a parent, or after UPDATE OF its key when the key changed:
-- refuse while a child row still names the old key. Arguments: child table, child column,
-- parent key column, constraint name.
CREATE FUNCTION refuse_referenced_key_change() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    referenced boolean;
BEGIN
    EXECUTE format('SELECT true FROM %I c WHERE c.%I = ($1).%I LIMIT 1', TG_ARGV[0], TG_ARGV[1], TG_ARGV[2])
        INTO referenced USING OLD;
    IF referenced THEN
        RAISE EXCEPTION 'update or delete on table "%" violates foreign key constraint "%" on table "%"',
                        TG_TABLE_NAME, TG_ARGV[3], TG_ARGV[0]
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_ARGV[3], TABLE = TG_ARGV[0],
                  DETAIL = format('Key is still referenced from table "%s".', TG_ARGV[0]);
    END IF;
    RETURN NULL;
END
$$;

-- Row-level, after UPDATE OF a parent's key when it changed: carry the new key to the child
-- rows. Arguments: child table, child column, parent key column.
CREATE FUNCTION rename_referencing_rows() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('UPDATE %1$I c SET %2$I = ($2).%3$I WHERE c.%2$I = ($1).%3$I', TG_ARGV[0], TG_ARGV[1], TG_ARGV[2])
        USING OLD, NEW;
    RETURN NULL;
END
$$;

-- Statement-level, after TRUNCATE of a parent: refuse while the child still has rows naming
-- any key (truncating both in one command passes). Arguments: child table, child column.
CREATE FUNCTION refuse_truncating_referenced() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    referenced boolean;
BEGIN
    EXECUTE format('SELECT true FROM %I WHERE %I IS NOT NULL LIMIT 1', TG_ARGV[0], TG_ARGV[1]) INTO referenced;
    IF referenced THEN
        RAISE EXCEPTION 'cannot truncate table "%": table "%" still refers to it', TG_TABLE_NAME, TG_ARGV[0]
            USING ERRCODE = 'feature_not_supported';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER subscriptions_references AFTER INSERT ON subscriptions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION subscriptions_check_references();
CREATE TRIGGER consents_references AFTER INSERT ON consents
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION consents_check_references();
CREATE TRIGGER subscribers_references AFTER INSERT ON subscribers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION subscribers_check_references();

-- subscriptions.subscriber_id -> subscribers.id, ON DELETE CASCADE
CREATE TRIGGER subscriptions_subscriber_id_fkey_upd AFTER UPDATE OF subscriber_id ON subscriptions
    FOR EACH ROW WHEN (OLD.subscriber_id IS DISTINCT FROM NEW.subscriber_id)
    EXECUTE FUNCTION check_updated_reference('subscriber_id', 'subscribers', 'id', 'subscriptions_subscriber_id_fkey');
CREATE TRIGGER subscriptions_subscriber_id_fkey_del AFTER DELETE ON subscribers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION delete_referencing_rows('subscriptions', 'subscriber_id', 'id');

-- subscriptions.list_id -> lists.id, ON DELETE CASCADE
CREATE TRIGGER subscriptions_list_id_fkey_upd AFTER UPDATE OF list_id ON subscriptions
    FOR EACH ROW WHEN (OLD.list_id IS DISTINCT FROM NEW.list_id)
    EXECUTE FUNCTION check_updated_reference('list_id', 'lists', 'id', 'subscriptions_list_id_fkey');
CREATE TRIGGER subscriptions_list_id_fkey_del AFTER DELETE ON lists
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION delete_referencing_rows('subscriptions', 'list_id', 'id');

-- consents.subscriber_id -> subscribers.id, ON DELETE CASCADE
CREATE TRIGGER consents_subscriber_id_fkey_upd AFTER UPDATE OF subscriber_id ON consents
    FOR EACH ROW WHEN (OLD.subscriber_id IS DISTINCT FROM NEW.subscriber_id)
    EXECUTE FUNCTION check_updated_reference('subscriber_id', 'subscribers', 'id', 'consents_subscriber_id_fkey');
CREATE TRIGGER consents_subscriber_id_fkey_del AFTER DELETE ON subscribers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION delete_referencing_rows('consents', 'subscriber_id', 'id');

-- subscribers.id and lists.id are identities (GENERATED ALWAYS) and never change in Letterbox;
-- `SET id = DEFAULT` would, so it is refused while rows refer to the old id (NO ACTION).
CREATE TRIGGER subscriptions_subscriber_id_fkey_key AFTER UPDATE OF id ON subscribers
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION refuse_referenced_key_change('subscriptions', 'subscriber_id', 'id', 'subscriptions_subscriber_id_fkey');
CREATE TRIGGER consents_subscriber_id_fkey_key AFTER UPDATE OF id ON subscribers
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION refuse_referenced_key_change('consents', 'subscriber_id', 'id', 'consents_subscriber_id_fkey');
CREATE TRIGGER subscriptions_list_id_fkey_key AFTER UPDATE OF id ON lists
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION refuse_referenced_key_change('subscriptions', 'list_id', 'id', 'subscriptions_list_id_fkey');
-- subscribers has other foreign keys pointing at it, so PostgreSQL already refuses to truncate it alone.
CREATE TRIGGER subscriptions_list_id_fkey_truncate AFTER TRUNCATE ON lists
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncating_referenced('subscriptions', 'list_id');

-- subscribers.agency -> agencies.slug and subscribers.role -> roles.slug: ON UPDATE CASCADE,
-- ON DELETE NO ACTION.
CREATE TRIGGER subscribers_references_upd AFTER UPDATE OF agency, role ON subscribers
    FOR EACH ROW WHEN (OLD.agency IS DISTINCT FROM NEW.agency OR OLD.role IS DISTINCT FROM NEW.role)
    EXECUTE FUNCTION subscribers_check_updated_references();
CREATE TRIGGER subscribers_agency_fkey_del AFTER DELETE ON agencies
    FOR EACH ROW EXECUTE FUNCTION refuse_referenced_key_change('subscribers', 'agency', 'slug', 'subscribers_agency_fkey');
CREATE TRIGGER subscribers_agency_fkey_key AFTER UPDATE OF slug ON agencies
    FOR EACH ROW WHEN (OLD.slug IS DISTINCT FROM NEW.slug)
    EXECUTE FUNCTION rename_referencing_rows('subscribers', 'agency', 'slug');
CREATE TRIGGER subscribers_agency_fkey_truncate AFTER TRUNCATE ON agencies
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncating_referenced('subscribers', 'agency');

CREATE TRIGGER subscribers_role_fkey_del AFTER DELETE ON roles
    FOR EACH ROW EXECUTE FUNCTION refuse_referenced_key_change('subscribers', 'role', 'slug', 'subscribers_role_fkey');
CREATE TRIGGER subscribers_role_fkey_key AFTER UPDATE OF slug ON roles
    FOR EACH ROW WHEN (OLD.slug IS DISTINCT FROM NEW.slug)
    EXECUTE FUNCTION rename_referencing_rows('subscribers', 'role', 'slug');
CREATE TRIGGER subscribers_role_fkey_truncate AFTER TRUNCATE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncating_referenced('subscribers', 'role');

-- Import staging (service/subscribers/importer.py): rows carry their lists' ids, checked in
-- Python, and, once merged, the id of the person they became, so that the statements writing
-- subscriptions and consent records join nothing. Rows are found by (import, line): the
-- statements that drop superseded lines and that resolve people reach them through it.
-- Half-full pages let resolving a row's person rewrite it in place (a HOT update).
ALTER TABLE import_staging ADD COLUMN list_ids bigint[] NOT NULL, ADD COLUMN subscriber_id bigint;
DROP INDEX import_staging_import_idx;
CREATE UNIQUE INDEX import_staging_line_key ON import_staging (import_id, line);
ALTER TABLE import_staging SET (fillfactor = 50);
