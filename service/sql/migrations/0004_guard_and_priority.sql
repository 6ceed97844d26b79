-- The complaint guard pauses a sending edition once; an operator who resumes it has decided,
-- and the guard does not pause it again (service/delivery/housekeeping.py).
ALTER TABLE editions ADD COLUMN guard_tripped_at timestamptz;

-- Editions sending at once take turns; an urgent one (a safeguarding alert) goes before the rest.
ALTER TABLE editions ADD COLUMN priority text NOT NULL DEFAULT 'normal' CHECK (priority IN ('normal', 'urgent'));

-- Imports stream their checked rows here with COPY, then merge them in one statement
-- (sql/queries/import.sql). Unlogged: rows live only inside the importing transaction,
-- which deletes them; each import tags its rows so that imports can run side by side.
CREATE UNLOGGED TABLE import_staging (
    import_id  uuid NOT NULL,
    line       integer NOT NULL,
    email      text NOT NULL,
    name       text,
    agency     text,
    role       text,
    attributes text,
    lists      text[] NOT NULL
);
CREATE INDEX import_staging_import_idx ON import_staging (import_id);

-- Form sign-ups waiting to be decided (new, pending, active, suppressed). The form writes one
-- row the same way for every address, so its answer time tells no one whether an address
-- reads the newsletter; the process that answered decides it at once, and a worker decides
-- any a crash left behind (service/subscribers/signups.py).
CREATE TABLE sign_up_requests (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL,
    request    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_up_requests_email_idx ON sign_up_requests (lower(email));
