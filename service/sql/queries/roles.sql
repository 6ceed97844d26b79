-- name: demo-roles
-- Add sample roles (slugs $1, names $2); existing slugs are left as they are.
INSERT INTO roles (slug, name) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING;

-- name: role-exists
-- Whether a role slug is known.
SELECT EXISTS (SELECT 1 FROM roles WHERE slug = $1);

-- name: role-list
-- Every role, for the form and the API, in name order.
SELECT slug, name FROM roles ORDER BY name, slug;

-- name: role-insert
-- Add a role; a duplicate slug trips roles_pkey (409).
INSERT INTO roles (slug, name) VALUES ($1, $2) RETURNING slug, name;
