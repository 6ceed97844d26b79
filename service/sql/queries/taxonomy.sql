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
