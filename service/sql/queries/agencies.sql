-- name: demo-agencies
-- Add sample agencies (slugs $1, names $2); existing slugs are left as they are.
INSERT INTO agencies (slug, name) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING;

-- name: agency-exists
-- Whether an agency slug is known.
SELECT EXISTS (SELECT 1 FROM agencies WHERE slug = $1);

-- name: agency-list
-- Every agency, for the form and the API, in name order.
SELECT slug, name FROM agencies ORDER BY name, slug;

-- name: agency-insert
-- Add an agency; a duplicate slug trips agencies_pkey (409).
INSERT INTO agencies (slug, name) VALUES ($1, $2) RETURNING slug, name;
