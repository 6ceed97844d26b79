-- Say when what the public forms offer may have changed: agencies, roles, lists.
--
-- Each web process keeps the forms' choices instead of reading them for every page
-- (service/taxonomy/choices.py) and listens on this channel; a statement that writes one of
-- these tables notifies it, once per transaction (PostgreSQL folds identical notifications),
-- when the transaction commits, so no process keeps choices older than the last commit.
CREATE FUNCTION notify_form_choices() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('letterbox_form_choices', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER agencies_notify_form_choices AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON agencies
    FOR EACH STATEMENT EXECUTE FUNCTION notify_form_choices();
CREATE TRIGGER roles_notify_form_choices AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION notify_form_choices();
CREATE TRIGGER lists_notify_form_choices AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON lists
    FOR EACH STATEMENT EXECUTE FUNCTION notify_form_choices();
