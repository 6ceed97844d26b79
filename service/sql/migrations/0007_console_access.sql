-- The operator console's people, sessions, sign-in throttle and the audit log
-- (DESIGN.md "Operator console").
--
-- users: who may sign in to /console/. password_hash is an Argon2id string (NULL for an
-- account that signs in only through OpenID Connect). A disabled account keeps its row, so
-- the audit log's actors stay explainable.
CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          text NOT NULL CHECK (length(email) BETWEEN 3 AND 320 AND email = lower(email)),
    role           text NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    password_hash  text,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at timestamptz,
    CONSTRAINT users_email_key UNIQUE (email)
);

-- console_sessions: one row per signed-in browser; the cookie carries its signed id. Signing
-- out, disabling the user or changing their role deletes the rows, so a copied cookie stops
-- working at once in every process. last_seen_at gives the idle timeout.
CREATE TABLE console_sessions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX console_sessions_user_idx ON console_sessions (user_id);

-- sign_in_failures: failed sign-ins per key ('account:<email>' or 'client:<address>') in the
-- current window, kept in the database so that every process slows the same attacker.
CREATE TABLE sign_in_failures (
    key           text PRIMARY KEY,
    failures      integer NOT NULL,
    window_start  timestamptz NOT NULL DEFAULT now(),
    blocked_until timestamptz
);

-- audit_log: every change made through the console or /v1: who (a user's email or an API key's
-- name), what, on which object, when. Append-only: the trigger below refuses deletes and any
-- update except erasure's, which may only blank the detail and an address used as object id.
-- subject_hash is email_hash() of the reader's address an entry is about, so erasing that
-- reader finds it.
CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    object_type  text NOT NULL,
    object_id    text,
    detail       jsonb,
    subject_hash bytea
);
CREATE INDEX audit_log_object_idx ON audit_log (object_type, object_id);
CREATE INDEX audit_log_subject_idx ON audit_log (subject_hash) WHERE subject_hash IS NOT NULL;

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit_log is append-only';
    END IF;
    IF NEW.id <> OLD.id OR NEW.at <> OLD.at OR NEW.actor <> OLD.actor OR NEW.action <> OLD.action
       OR NEW.object_type <> OLD.object_type
       OR NEW.subject_hash IS DISTINCT FROM OLD.subject_hash
       OR (NEW.object_id IS NOT NULL AND NEW.object_id IS DISTINCT FROM OLD.object_id)
       OR (NEW.detail IS NOT NULL AND NEW.detail IS DISTINCT FROM OLD.detail) THEN
        RAISE EXCEPTION 'audit_log is append-only: an entry may only lose personal data';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
