-- name: agency-list
-- Every agency, for the form and the API, in name order.
SELECT slug, name FROM agencies ORDER BY name, slug;

-- name: agency-insert
-- Add an agency; a duplicate slug trips agencies_pkey (409).
INSERT INTO agencies (slug, name) VALUES ($1, $2) RETURNING slug, name;

-- name: role-list
-- Every role, for the form and the API, in name order.
SELECT slug, name FROM roles ORDER BY name, slug;

-- name: role-insert
-- Add a role; a duplicate slug trips roles_pkey (409).
INSERT INTO roles (slug, name) VALUES ($1, $2) RETURNING slug, name;

-- name: list-all
-- Every mailing list, public or not, in name order.
SELECT id, slug, name, description, public, created_at FROM lists ORDER BY name, slug;

-- name: list-public
-- The lists offered on the public form.
SELECT id, slug, name, description, public, created_at FROM lists WHERE public ORDER BY name, slug;

-- name: list-insert
-- Add a mailing list; a duplicate slug trips lists_slug_key (409).
INSERT INTO lists (slug, name, description, public) VALUES ($1, $2, $3, $4)
RETURNING id, slug, name, description, public, created_at;

-- name: list-update
-- Change a list's name, description or visibility; NULL keeps the old value.
UPDATE lists
SET name = coalesce($2, name), description = coalesce($3, description), public = coalesce($4, public),
    updated_at = now()
WHERE slug = $1
RETURNING id, slug, name, description, public, created_at;

-- name: list-ids-by-slugs
-- Resolve list slugs to ids; the caller compares counts to find unknown slugs.
SELECT id, slug FROM lists WHERE slug = ANY($1::text[]);

-- name: console-lists
-- Every list, archived ones last, with its readers by subscription status.
SELECT l.id, l.slug, l.name, l.description, l.public, l.archived_at, l.created_at,
       c.confirmed, c.pending, c.unsubscribed
FROM lists l
CROSS JOIN LATERAL (
    SELECT count(*) FILTER (WHERE sub.status = 'confirmed') AS confirmed,
           count(*) FILTER (WHERE sub.status = 'pending') AS pending,
           count(*) FILTER (WHERE sub.status = 'unsubscribed') AS unsubscribed
    FROM subscriptions sub WHERE sub.list_id = l.id
) c
ORDER BY l.archived_at IS NOT NULL, l.name, l.slug;

-- name: console-agencies
-- Every agency with how many readers name it.
SELECT t.slug, t.name, (SELECT count(*) FROM subscribers s WHERE s.agency = t.slug) AS readers
FROM agencies t ORDER BY t.name, t.slug;

-- name: console-roles
-- Every role with how many readers name it.
SELECT t.slug, t.name, (SELECT count(*) FROM subscribers s WHERE s.role = t.slug) AS readers
FROM roles t ORDER BY t.name, t.slug;

-- name: list-rename
-- An editor renames a list (and changes its description); no row: no such list.
UPDATE lists SET name = $2, description = $3, updated_at = now() WHERE slug = $1
RETURNING id, slug, name;

-- name: list-archive
-- Archive a list: off the public form, shown apart; readers keep their subscriptions. No row:
-- no such list, or already archived.
UPDATE lists SET archived_at = now(), public = false, updated_at = now()
WHERE slug = $1 AND archived_at IS NULL
RETURNING id, slug, name;

-- name: list-restore
-- Bring an archived list back (not public until an editor says so). No row: not archived.
UPDATE lists SET archived_at = NULL, updated_at = now()
WHERE slug = $1 AND archived_at IS NOT NULL
RETURNING id, slug, name;
