-- name: demo-agencies
-- Add sample agencies (slugs $1, names $2); existing slugs are left as they are.
INSERT INTO agencies (slug, name) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING;

-- name: demo-roles
-- Add sample roles (slugs $1, names $2); existing slugs are left as they are.
INSERT INTO roles (slug, name) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING;

-- name: demo-lists
-- Add sample public lists (slugs, names, descriptions); existing slugs are left as they are.
INSERT INTO lists (slug, name, description, public)
SELECT slug, name, description, true FROM unnest($1::text[], $2::text[], $3::text[]) AS t(slug, name, description)
ON CONFLICT DO NOTHING;
