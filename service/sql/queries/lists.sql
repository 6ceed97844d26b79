-- name: demo-lists
-- Add sample public lists (slugs, names, descriptions); existing slugs are left as they are.
INSERT INTO lists (slug, name, description, public)
SELECT slug, name, description, true FROM unnest($1::text[], $2::text[], $3::text[]) AS t(slug, name, description)
ON CONFLICT DO NOTHING;

-- name: list-by-id
-- A list's slug and name, for the List-Id header.
SELECT id, slug, name FROM lists WHERE id = $1;

-- name: lists-by-slugs
-- Resolve list slugs to ids, names and visibility; the caller finds unknown slugs.
SELECT id, slug, name, public FROM lists WHERE slug = ANY ($1::text[]);

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

-- name: form-choices
-- What the public forms offer, in one round trip: every agency and role, and the public lists, each in name order.
SELECT
    (SELECT coalesce(json_agg(json_build_object('slug', slug, 'name', name) ORDER BY name, slug), '[]')
     FROM agencies) AS agencies,
    (SELECT coalesce(json_agg(json_build_object('slug', slug, 'name', name) ORDER BY name, slug), '[]')
     FROM roles) AS roles,
    (SELECT coalesce(json_agg(json_build_object('id', id, 'slug', slug, 'name', name, 'public', public,
                                                'description', description) ORDER BY name, slug), '[]')
     FROM lists WHERE public) AS lists;
