-- name: segment-list
-- Every saved segment, in name order.
SELECT slug, name, lists, filter, created_at, updated_at FROM segments ORDER BY name, slug;

-- name: segment-get
-- One saved segment by slug.
SELECT slug, name, lists, filter, created_at, updated_at FROM segments WHERE slug = $1;

-- name: segment-insert
-- Save a segment; a duplicate slug trips segments_pkey (409).
INSERT INTO segments (slug, name, lists, filter) VALUES ($1, $2, $3::text[], $4::jsonb)
RETURNING slug, name, lists, filter, created_at, updated_at;

-- name: segment-update
-- Change a segment: NULL keeps the name or lists; the filter changes only when $4 is true ($5 may be NULL).
UPDATE segments
SET name = coalesce($2, name), lists = coalesce($3::text[], lists),
    filter = CASE WHEN $4::boolean THEN $5::jsonb ELSE filter END, updated_at = now()
WHERE slug = $1
RETURNING slug, name, lists, filter, created_at, updated_at;

-- name: segment-delete
-- Forget a saved segment; editions already posted keep their frozen recipients.
DELETE FROM segments WHERE slug = $1 RETURNING slug;
