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
