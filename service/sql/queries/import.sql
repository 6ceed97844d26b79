-- name: import-upsert
-- Import one batch of people who consented elsewhere, in one statement. Suppressed addresses
-- are left out; new people become active and confirmed; pending and active people take the
-- row's details (empty values keep theirs) and are confirmed; people who unsubscribed, bounced
-- or complained here are left alone (another list's consent does not override ours). Lists
-- join as confirmed, except lists the person left. Each imported person gets a consent record.
-- Returns how many were created and updated; the rest of the batch was skipped.
WITH input AS (
    SELECT t.email, t.name, t.agency, t.role, t.attributes, string_to_array(t.lists, ',') AS slugs
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[])
         AS t(email, name, agency, role, attributes, lists)
    WHERE NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = email_hash(t.email))
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
SELECT count(*) FILTER (WHERE created) AS created, count(*) FILTER (WHERE NOT created) AS updated
FROM upserted;

-- name: import-custom-plans
-- For the rest of the import's transaction, plan each batch for its own arrays: a generic
-- plan cannot see how many rows the arrays hold and joins the CTEs ten times slower.
SET LOCAL plan_cache_mode = force_custom_plan;

-- name: import-known-terms
-- Every agency, role and list slug, so import rows are checked without a query each.
SELECT 'agency' AS kind, slug FROM agencies
UNION ALL SELECT 'role', slug FROM roles
UNION ALL SELECT 'list', slug FROM lists;
