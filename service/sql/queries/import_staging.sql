-- name: import-merge
-- Merge one import's staged rows ($1, streamed in with COPY) in one statement; the last line
-- for an address wins. Suppressed addresses are left out; new people become active and
-- confirmed; pending and active people take the row's details (empty values keep theirs) and
-- are confirmed; people who unsubscribed, bounced or complained here are left alone (another
-- list's consent does not override ours). Lists join as confirmed, except lists the person
-- left. Each imported person gets a consent record. Returns the rows staged and how many
-- people were created and updated; the rest were skipped.
WITH staged AS (
    SELECT count(*) AS n FROM import_staging WHERE import_id = $1
), input AS (
    SELECT DISTINCT ON (lower(t.email)) t.email, t.name, t.agency, t.role, t.attributes::jsonb AS attributes,
           t.lists AS slugs
    FROM import_staging t
    WHERE t.import_id = $1
      AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = email_hash(t.email))
    ORDER BY lower(t.email), t.line DESC
), upserted AS (
    INSERT INTO subscribers AS s (email, name, agency, role, attributes, status, confirmed_at)
    SELECT email, coalesce(name, ''), agency, role, coalesce(attributes, '{}'::jsonb), 'active', now()
    FROM input
    ON CONFLICT (lower(email)) DO UPDATE
    SET name = coalesce(nullif(excluded.name, ''), s.name),
        agency = coalesce(excluded.agency, s.agency),
        role = coalesce(excluded.role, s.role),
        attributes = s.attributes || excluded.attributes,
        status = 'active',
        confirmed_at = coalesce(s.confirmed_at, now()),
        updated_at = now()
    WHERE s.status IN ('pending', 'active')
    RETURNING s.id, lower(s.email) AS key, (s.xmax = 0) AS created
), joined AS (
    INSERT INTO subscriptions AS sub (list_id, subscriber_id, status)
    SELECT l.id, u.id, 'confirmed'
    FROM upserted u
    JOIN input i ON lower(i.email) = u.key
    JOIN lists l ON l.slug = ANY (i.slugs)
    ON CONFLICT (list_id, subscriber_id) DO UPDATE SET status = 'confirmed', updated_at = now()
    WHERE sub.status = 'pending'
), recorded AS (
    INSERT INTO consents (subscriber_id, action, lists, source)
    SELECT u.id, 'import', i.slugs, 'import'
    FROM upserted u JOIN input i ON lower(i.email) = u.key
)
SELECT (SELECT n FROM staged) AS staged,
       count(*) FILTER (WHERE created) AS created, count(*) FILTER (WHERE NOT created) AS updated
FROM upserted;

-- name: import-staging-clear
-- Remove one import's staged rows once merged (they never outlive the import's transaction).
DELETE FROM import_staging WHERE import_id = $1;

-- name: import-known-terms
-- Every agency, role and list slug, so import rows are checked without a query each.
SELECT 'agency' AS kind, slug FROM agencies
UNION ALL SELECT 'role', slug FROM roles
UNION ALL SELECT 'list', slug FROM lists;
