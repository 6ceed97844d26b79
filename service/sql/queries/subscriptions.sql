-- name: audience-count
-- How many people an edition to these lists would reach now: active, confirmed on at
-- least one of the lists, not suppressed, matching the segment filter; one per person.
-- "TRUE /* segment-filter */" is replaced by the compiled filter (placeholders only).
SELECT count(*)
FROM subscribers s
WHERE s.status = 'active'
  AND EXISTS (
      SELECT 1 FROM subscriptions sub
      WHERE sub.subscriber_id = s.id AND sub.list_id = ANY ($1::bigint[]) AND sub.status = 'confirmed'
  )
  AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.email_hash = s.email_hash)
  AND (TRUE /* segment-filter */);

-- name: export-subscriptions
-- Every subscription row of one person with the list's name.
SELECT l.slug, l.name, sub.status, sub.created_at, sub.updated_at
FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
WHERE sub.subscriber_id = $1 ORDER BY l.slug;

-- name: purge-pending-subscriptions
-- Other people's list requests never confirmed within $1 days: forget the request.
WITH gone AS (
    DELETE FROM subscriptions
    WHERE status = 'pending' AND updated_at < now() - make_interval(days => $1)
    RETURNING 1
)
SELECT count(*) FROM gone;

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

-- name: subscriber-memberships
-- A person's subscriptions with the lists' names, for the preferences and unsubscribe pages.
SELECT l.id, l.slug, l.name, l.description, l.public, sub.status
FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
WHERE sub.subscriber_id = $1
ORDER BY l.name, l.slug;

-- name: subscriptions-import
-- After import $1's people are merged (subscribers-import, which created the people $2): each
-- staged row that names an active person joins them to the row's lists as confirmed (a list they
-- left stays left) and leaves one consent record. One statement, so that both see the same
-- people, found with one join; people who unsubscribed, bounced or complained are skipped. The
-- people just created have no subscription another transaction could have written (none can see
-- them yet), so theirs are inserted plainly, without the conflict check each existing person's
-- needs; a known person's lists already confirmed or left are not even tried (trying locked
-- each of those rows: 200,000 locks on a re-import). Returns how many rows named a person.
WITH people AS MATERIALIZED (
    SELECT s.id, t.list_ids, t.lists, n.id IS NOT NULL AS created
    FROM import_staging t
    JOIN subscribers s ON lower(s.email) = lower(t.email)
    LEFT JOIN unnest($2::bigint[]) AS n(id) ON n.id = s.id
    WHERE t.import_id = $1 AND s.status = 'active'
), fresh AS (
    INSERT INTO subscriptions (list_id, subscriber_id, status)
    SELECT l.id, p.id, 'confirmed' FROM people p CROSS JOIN unnest(p.list_ids) AS l(id)
    WHERE p.created
), joined AS (
    INSERT INTO subscriptions AS sub (list_id, subscriber_id, status)
    SELECT l.id, p.id, 'confirmed' FROM people p CROSS JOIN unnest(p.list_ids) AS l(id)
    WHERE NOT p.created AND NOT EXISTS (
        SELECT FROM subscriptions x WHERE x.list_id = l.id AND x.subscriber_id = p.id AND x.status <> 'pending')
    ON CONFLICT (list_id, subscriber_id) DO UPDATE SET status = 'confirmed', updated_at = now()
    WHERE sub.status = 'pending'
), recorded AS (
    INSERT INTO consents (subscriber_id, action, lists, source)
    SELECT id, 'import', lists, 'import' FROM people
)
SELECT count(*) FROM people;
