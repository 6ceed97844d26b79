-- name: address-suppressed
-- Whether an address must never be mailed (bounced, complained, erased): checked by its hash.
SELECT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = email_hash($1));

-- name: subscriber-request
-- Someone asks to subscribe: a new person is created pending; a pending one takes the newest
-- details; anyone who has confirmed before keeps theirs (only their preferences link changes them).
-- Returns the row, locked for the rest of the transaction.
INSERT INTO subscribers AS s (email, name, agency, role, attributes)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (lower(email)) DO UPDATE
SET name = CASE WHEN s.status = 'pending' THEN excluded.name ELSE s.name END,
    agency = CASE WHEN s.status = 'pending' THEN excluded.agency ELSE s.agency END,
    role = CASE WHEN s.status = 'pending' THEN excluded.role ELSE s.role END,
    attributes = CASE WHEN s.status = 'pending' THEN s.attributes || excluded.attributes ELSE s.attributes END,
    updated_at = now()
RETURNING s.id, s.email, s.status;

-- name: subscriptions-request
-- Ask for lists: new and left lists become pending again, confirmed ones stay.
-- Returns the lists that now wait for confirmation (none: nothing to confirm, no mail).
INSERT INTO subscriptions AS sub (list_id, subscriber_id, status)
SELECT list_id, $1, 'pending' FROM unnest($2::bigint[]) AS t(list_id)
ON CONFLICT (list_id, subscriber_id) DO UPDATE SET status = 'pending', updated_at = now()
WHERE sub.status <> 'confirmed'
RETURNING sub.list_id;

-- name: subscriptions-confirm
-- Double opt-in: every pending subscription of the person becomes confirmed; returns their slugs.
WITH done AS (
    UPDATE subscriptions SET status = 'confirmed', updated_at = now()
    WHERE subscriber_id = $1 AND status = 'pending'
    RETURNING list_id
)
SELECT l.slug FROM done JOIN lists l ON l.id = done.list_id ORDER BY l.slug;

-- name: subscriber-activate
-- The person proved they read this mailbox: active from now (confirmed_at kept if already active).
UPDATE subscribers
SET status = 'active', confirmed_at = CASE WHEN status = 'active' THEN confirmed_at ELSE now() END,
    updated_at = now()
WHERE id = $1;

-- name: subscriptions-leave
-- Leave one list ($2) or every list ($2 NULL); returns the slugs actually left.
WITH done AS (
    UPDATE subscriptions SET status = 'unsubscribed', updated_at = now()
    WHERE subscriber_id = $1 AND ($2::bigint IS NULL OR list_id = $2) AND status <> 'unsubscribed'
    RETURNING list_id
)
SELECT l.slug FROM done JOIN lists l ON l.id = done.list_id ORDER BY l.slug;

-- name: subscriptions-leave-lists
-- Leave the given lists (preferences page: shown but not ticked); returns the slugs left.
WITH done AS (
    UPDATE subscriptions SET status = 'unsubscribed', updated_at = now()
    WHERE subscriber_id = $1 AND list_id = ANY ($2::bigint[]) AND status <> 'unsubscribed'
    RETURNING list_id
)
SELECT l.slug FROM done JOIN lists l ON l.id = done.list_id ORDER BY l.slug;

-- name: subscriptions-join-confirmed
-- Join lists as confirmed straight away (the preferences link proves the mailbox); returns the slugs joined.
WITH done AS (
    INSERT INTO subscriptions AS sub (list_id, subscriber_id, status)
    SELECT list_id, $1, 'confirmed' FROM unnest($2::bigint[]) AS t(list_id)
    ON CONFLICT (list_id, subscriber_id) DO UPDATE SET status = 'confirmed', updated_at = now()
    WHERE sub.status <> 'confirmed'
    RETURNING sub.list_id
)
SELECT l.slug FROM done JOIN lists l ON l.id = done.list_id ORDER BY l.slug;

-- name: subscriber-settle-status
-- After lists changed: active with a confirmed list, unsubscribed without one. Bounced and
-- complained people stay as bounce handling left them. Returns the new status when it changed.
UPDATE subscribers s
SET status = target.status,
    confirmed_at = CASE WHEN target.status = 'active' THEN coalesce(s.confirmed_at, now()) ELSE s.confirmed_at END,
    updated_at = now()
FROM (
    SELECT CASE WHEN EXISTS (
        SELECT 1 FROM subscriptions WHERE subscriber_id = $1 AND status = 'confirmed'
    ) THEN 'active' ELSE 'unsubscribed' END AS status
) AS target
WHERE s.id = $1 AND s.status IN ('active', 'pending', 'unsubscribed') AND s.status <> target.status
RETURNING s.status;

-- name: edition-unsubscribe-record
-- Count an unsubscribe against the edition whose link was used (if the edition still exists).
INSERT INTO edition_unsubscribes (edition_id, subscriber_id)
SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM editions WHERE id = $1)
ON CONFLICT DO NOTHING;

-- name: subscriber-get
-- One person as the API shows them, with every list they have a subscription row for.
SELECT s.id, s.email, s.name, s.agency, s.role, s.attributes, s.status, s.created_at, s.confirmed_at,
       coalesce((
           SELECT jsonb_agg(jsonb_build_object('slug', l.slug, 'status', sub.status) ORDER BY l.slug)
           FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
           WHERE sub.subscriber_id = s.id
       ), '[]'::jsonb) AS lists
FROM subscribers s
WHERE s.id = $1;

-- name: subscriber-lock
-- Lock one person for a change (PATCH, erasure, preferences).
SELECT id, email, name, agency, role, status FROM subscribers WHERE id = $1 FOR UPDATE;

-- name: subscriber-memberships
-- A person's subscriptions with the lists' names, for the preferences and unsubscribe pages.
SELECT l.id, l.slug, l.name, l.description, l.public, sub.status
FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
WHERE sub.subscriber_id = $1
ORDER BY l.name, l.slug;

-- name: subscriber-update-details
-- The preferences page: name, agency and role as the person gave them.
UPDATE subscribers SET name = $2, agency = $3, role = $4, updated_at = now() WHERE id = $1;

-- name: subscriber-patch
-- An operator's change; each value is applied only when its flag is true.
UPDATE subscribers
SET name = CASE WHEN $2 THEN $3 ELSE name END,
    agency = CASE WHEN $4 THEN $5 ELSE agency END,
    role = CASE WHEN $6 THEN $7 ELSE role END,
    attributes = CASE WHEN $8 THEN $9::jsonb ELSE attributes END,
    updated_at = now()
WHERE id = $1;

-- name: subscriber-set-status
-- An operator's status change (the rules are in service/subscribers/lifecycle.py).
UPDATE subscribers SET status = $2, updated_at = now() WHERE id = $1;

-- name: subscriber-page
-- One page of people in id order after the cursor ($1), filtered by status, list (pending or
-- confirmed on it), agency, role and a case-insensitive pattern on address or name.
SELECT s.id, s.email, s.name, s.agency, s.role, s.attributes, s.status, s.created_at, s.confirmed_at,
       coalesce((
           SELECT jsonb_agg(jsonb_build_object('slug', l.slug, 'status', sub.status) ORDER BY l.slug)
           FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
           WHERE sub.subscriber_id = s.id
       ), '[]'::jsonb) AS lists
FROM subscribers s
WHERE s.id > $1
  AND ($2::text IS NULL OR s.status = $2)
  AND ($3::bigint IS NULL OR EXISTS (
      SELECT 1 FROM subscriptions sub
      WHERE sub.subscriber_id = s.id AND sub.list_id = $3 AND sub.status <> 'unsubscribed'
  ))
  AND ($4::text IS NULL OR s.agency = $4)
  AND ($5::text IS NULL OR s.role = $5)
  AND ($6::text IS NULL OR s.email ILIKE $6 OR s.name ILIKE $6)
ORDER BY s.id
LIMIT $7;

-- name: subscribers-import
-- Merge the people of import $1 (its staged rows, one per address once settled): new people
-- become active and confirmed; pending and active people take the row's details (empty values
-- keep theirs) and are confirmed; people who unsubscribed, bounced or complained here are left
-- alone (another list's consent does not override ours). An active person whose details would
-- not change is not rewritten (a re-import rewrote 100,000 rows and their seven index entries
-- each), but is still locked, as every person merged, until the import ends.
-- Returns how many people were created.
WITH merged AS (
    INSERT INTO subscribers AS s (email, name, agency, role, attributes, status, confirmed_at)
    SELECT email, coalesce(name, ''), agency, role, coalesce(attributes::jsonb, '{}'::jsonb), 'active', now()
    FROM import_staging
    WHERE import_id = $1
    ON CONFLICT (lower(email)) DO UPDATE
    SET name = coalesce(nullif(excluded.name, ''), s.name),
        agency = coalesce(excluded.agency, s.agency),
        role = coalesce(excluded.role, s.role),
        attributes = s.attributes || excluded.attributes,
        status = 'active',
        confirmed_at = coalesce(s.confirmed_at, now()),
        updated_at = now()
    WHERE s.status = 'pending'
       OR s.status = 'active'
          AND (s.confirmed_at IS NULL
               OR (s.name, s.agency, s.role, s.attributes) IS DISTINCT FROM
                  (coalesce(nullif(excluded.name, ''), s.name), coalesce(excluded.agency, s.agency),
                   coalesce(excluded.role, s.role), s.attributes || excluded.attributes))
    RETURNING s.xmax = 0 AS created
)
SELECT count(*) FILTER (WHERE created) FROM merged;

-- name: subscriptions-import
-- The lists of import $1's people (staged rows noted with a person by import-staging-members)
-- join as confirmed, except lists the person left.
INSERT INTO subscriptions AS sub (list_id, subscriber_id, status)
SELECT l.id, t.subscriber_id, 'confirmed'
FROM import_staging t CROSS JOIN unnest(t.list_ids) AS l(id)
WHERE t.import_id = $1 AND t.subscriber_id IS NOT NULL
ON CONFLICT (list_id, subscriber_id) DO UPDATE SET status = 'confirmed', updated_at = now()
WHERE sub.status = 'pending';
