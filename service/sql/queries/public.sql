-- name: rate-limit-hit
-- Count one attempt in a fixed window shared by every replica; returns the count so far.
INSERT INTO rate_limits (bucket, window_start, hits) VALUES ($1, to_timestamp($2), 1)
ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1
RETURNING hits;

-- name: rate-limit-forget
-- Drop a bucket's windows (erasure: the bucket is derived from the address).
DELETE FROM rate_limits WHERE bucket = $1;

-- name: lists-by-slugs
-- Resolve list slugs to ids, names and visibility; the caller finds unknown slugs.
SELECT id, slug, name, public FROM lists WHERE slug = ANY ($1::text[]);

-- name: agency-exists
-- Whether an agency slug is known.
SELECT EXISTS (SELECT 1 FROM agencies WHERE slug = $1);

-- name: role-exists
-- Whether a role slug is known.
SELECT EXISTS (SELECT 1 FROM roles WHERE slug = $1);

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
