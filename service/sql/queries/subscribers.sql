-- name: subscriber-for-bounce
-- The subscriber a bounce is about: by id when a token named them, else by address. Locked:
-- two reports about one reader (two copies expiring in the same queue run) are applied one
-- after the other, or both would read the soft-bounce count before either wrote it.
SELECT id, email, status FROM subscribers
WHERE ($1::bigint IS NOT NULL AND id = $1) OR ($1::bigint IS NULL AND lower(email) = lower($2))
LIMIT 1
FOR UPDATE;

-- name: subscriber-set-bounced
-- A hard bounce (or soft bounces over the limit): stop mailing; a complaint status stays.
UPDATE subscribers SET status = 'bounced', updated_at = now()
WHERE id = $1 AND status <> 'complained';

-- name: subscriber-set-complained
-- A complaint: status complained and every subscription ended.
WITH person AS (
    UPDATE subscribers SET status = 'complained', updated_at = now() WHERE id = $1 RETURNING id
)
UPDATE subscriptions SET status = 'unsubscribed', updated_at = now()
FROM person WHERE subscriptions.subscriber_id = person.id AND subscriptions.status <> 'unsubscribed';

-- name: subscriber-count-soft-bounce
-- Count a soft bounce. The count restarts when the window has passed since the first
-- counted one, or when a copy was delivered (sent, and no bounce counted for it) since then:
-- a delay warning alone does not make a copy undelivered.
UPDATE subscribers s
SET soft_bounces = CASE WHEN restart THEN 1 ELSE s.soft_bounces + 1 END,
    first_soft_bounce_at = CASE WHEN restart THEN now() ELSE s.first_soft_bounce_at END,
    updated_at = now()
FROM (
    SELECT s2.id,
           s2.first_soft_bounce_at IS NULL
           OR s2.first_soft_bounce_at < now() - make_interval(days => $2)
           OR EXISTS (
               SELECT 1 FROM deliveries d
               WHERE d.subscriber_id = s2.id AND d.status = 'sent' AND d.sent_at > s2.first_soft_bounce_at
                 AND d.id IS DISTINCT FROM $3::bigint
                 AND NOT EXISTS (SELECT 1 FROM bounce_events b WHERE b.delivery_id = d.id AND b.counted)
           ) AS restart
    FROM subscribers s2 WHERE s2.id = $1
) AS r
WHERE s.id = r.id
RETURNING s.soft_bounces;

-- name: erasure-subscriber
-- Delete the person; subscriptions, consents and edition unsubscribes go with them (cascade).
DELETE FROM subscribers WHERE id = $1;

-- name: purge-pending-subscribers
-- People who never confirmed and have not asked again for $1 days: delete them (and their
-- unconfirmed consent records and queued mail, by cascade). Returns how many.
WITH gone AS (
    DELETE FROM subscribers
    WHERE status = 'pending' AND confirmed_at IS NULL AND updated_at < now() - make_interval(days => $1)
    RETURNING id
)
SELECT count(*) FROM gone;

-- name: subscriber-request
-- Someone asks to subscribe (subscriber_request() in migration 0011: person, pending lists and
-- consent in one statement); no row when the address is suppressed, else the person and the
-- lists now waiting for confirmation (none: nothing to confirm, no mail).
SELECT person_id, person_email, waiting_slugs, waiting_names
FROM subscriber_request($1, $2, $3, $4, $5, $6::bigint[], $7, $8::inet, $9, $10);

-- name: subscriber-settle-status
-- After lists changed: active with a confirmed list, unsubscribed without one (bounced and
-- complained people stay); the new status when it changed (settle_subscriber_status(), migration 0011).
SELECT settle_subscriber_status($1) AS status;

-- name: subscriber-get
-- One person as the API shows them, with every list they have a subscription row for.
SELECT s.id, s.email, s.name, s.agency, s.role, s.attributes, s.status, s.created_at, s.confirmed_at,
       subscriber_lists(s.id) AS lists
FROM subscribers s
WHERE s.id = $1;

-- name: subscriber-lock
-- Lock one person for a change (PATCH, erasure, preferences).
SELECT id, email, name, agency, role, status FROM subscribers WHERE id = $1 FOR UPDATE;

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
       subscriber_lists(s.id) AS lists
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

-- name: console-subscriber-search
-- The console's readers in id order after $2, those whose address or name starts with $1 (a LIKE
-- prefix, already escaped and lower-cased; NULL: everyone); $3 rows.
SELECT s.id, s.email, s.name, s.status, a.name AS agency, r.name AS role, s.created_at
FROM subscribers s
LEFT JOIN agencies a ON a.slug = s.agency
LEFT JOIN roles r ON r.slug = s.role
WHERE s.id > $2
  AND ($1::text IS NULL OR lower(s.email) LIKE $1 || '%' OR lower(s.name) LIKE $1 || '%')
ORDER BY s.id
LIMIT $3;

-- name: console-readers-now
-- Active readers now by organisation and by role (the month under way on the dashboard).
SELECT GROUPING(agency) = 1 AS is_role, agency, role, count(*) AS readers
FROM subscribers
WHERE status = 'active'
GROUP BY GROUPING SETS ((agency), (role));

-- name: subscribers-import
-- Merge the people of import $1 (its staged rows, one per address once settled): new people
-- become active and confirmed; pending and active people take the row's details (empty values
-- keep theirs) and are confirmed; people who unsubscribed, bounced or complained here are left
-- alone (another list's consent does not override ours). Every person a row names is locked
-- until the import ends, so that an unsubscribe waits for the lists the import writes; the
-- batches locked them already (subscribers-import-new), so this lock costs a check. Only a
-- person whose details change is rewritten: the others were, by a conflict path for every row
-- (a re-import of 100,000 unchanged people spent 0.56 s here, mostly on that path). A row whose
-- person appeared meanwhile takes that conflict path. Returns the ids of the people created
-- (nobody else can have written a row naming them yet).
WITH staged AS MATERIALIZED (
    SELECT line, email, name, agency, role, coalesce(attributes::jsonb, '{}'::jsonb) AS attributes
    FROM import_staging WHERE import_id = $1
), held AS MATERIALIZED (
    SELECT s.id, t.line FROM staged t JOIN subscribers s ON lower(s.email) = lower(t.email)
    FOR NO KEY UPDATE OF s
), updated AS (
    UPDATE subscribers s
    SET name = coalesce(nullif(t.name, ''), s.name),
        agency = coalesce(t.agency, s.agency),
        role = coalesce(t.role, s.role),
        attributes = s.attributes || t.attributes,
        status = 'active',
        confirmed_at = coalesce(s.confirmed_at, now()),
        updated_at = now()
    FROM held h JOIN staged t USING (line)
    WHERE s.id = h.id
      AND (s.status = 'pending'
           OR s.status = 'active'
              AND (s.confirmed_at IS NULL
                   OR (s.name, s.agency, s.role, s.attributes) IS DISTINCT FROM
                      (coalesce(nullif(t.name, ''), s.name), coalesce(t.agency, s.agency),
                       coalesce(t.role, s.role), s.attributes || t.attributes)))
), merged AS (
    INSERT INTO subscribers AS s (email, name, agency, role, attributes, status, confirmed_at)
    SELECT email, coalesce(name, ''), agency, role, attributes, 'active', now()
    FROM staged t
    WHERE NOT EXISTS (SELECT FROM held h WHERE h.line = t.line)
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
    RETURNING s.id, s.xmax = 0 AS created
)
SELECT coalesce(array_agg(id) FILTER (WHERE created), '{}') FROM merged;

-- name: subscribers-import-new
-- One batch of import $1, sent while the rest of the body is still being read (one row per
-- address as written: the importer keeps the last). Each row whose address is not held yet, and
-- not suppressed, creates its person (active and confirmed), their lists (confirmed) and one
-- consent record; a row for an address already held (or taken by an earlier batch, or by another
-- row of this one written in another case) is staged for the merge at the end
-- (subscribers-import), which knows every row. A new person cannot have a subscription another
-- transaction wrote (nobody else sees them yet), so theirs are inserted without a conflict check.
-- Returns the people created and the line each came from (a staged row for the same address
-- decides by line which one stays: subscribers-import-supersede), and how many rows were staged.
-- The columns $2 to $9 come as text, a line per row, an empty line for an absent value (the
-- importer's _Batch.columns: no value holds a line break); unnest pads a column of one absent
-- value, which string_to_array reads as no element, with NULL as well.
WITH batch AS MATERIALIZED (
    SELECT b.*, h.held IS NOT NULL AS held
    FROM unnest(string_to_array($2, E'\n')::integer[], string_to_array($3, E'\n'), string_to_array($4, E'\n', ''),
                string_to_array($5, E'\n', ''), string_to_array($6, E'\n', ''), string_to_array($7, E'\n', ''),
                string_to_array($8, E'\n'), string_to_array($9, E'\n'))
         AS b(line, email, name, agency, role, attributes, lists, list_ids)
    -- One look into the address index per row (LIMIT keeps the planner from hashing every
    -- reader); a person held is locked now, as the merge at the end would, while the body is read.
    LEFT JOIN LATERAL (SELECT true AS held FROM subscribers s WHERE lower(s.email) = lower(b.email)
                       LIMIT 1 FOR NO KEY UPDATE OF s) h ON true
    -- email_hash()'s own expression: called as a function it costs three times as much (an SQL
    -- function declared IMMUTABLE around the STABLE convert_to() is never inlined).
    WHERE NOT EXISTS (SELECT FROM suppressions x WHERE x.email_hash = sha256(convert_to(lower(b.email), 'UTF8')))
), created AS (
    INSERT INTO subscribers (email, name, agency, role, attributes, status, confirmed_at)
    SELECT email, coalesce(name, ''), agency, role, coalesce(attributes::jsonb, '{}'::jsonb), 'active', now()
    FROM batch
    WHERE NOT held
    ON CONFLICT (lower(email)) DO NOTHING
    RETURNING id, email
), people AS MATERIALIZED (
    SELECT c.id, b.line, b.lists, b.list_ids FROM created c JOIN batch b USING (email)
), subscribed AS (
    INSERT INTO subscriptions (list_id, subscriber_id, status)
    SELECT l.id, p.id, 'confirmed' FROM people p CROSS JOIN unnest(p.list_ids::bigint[]) AS l(id)
), recorded AS (
    INSERT INTO consents (subscriber_id, action, lists, source)
    SELECT id, 'import', lists::text[], 'import' FROM people
), staged AS (
    INSERT INTO import_staging (import_id, line, email, name, agency, role, attributes, lists, list_ids)
    SELECT $1, line, email, name, agency, role, attributes, lists::text[], list_ids::bigint[]
    FROM batch b WHERE held OR NOT EXISTS (SELECT FROM created c WHERE c.email = b.email)
    RETURNING line
)
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(line), '{}') AS lines,
       (SELECT count(*) FROM staged) AS staged
FROM people;

-- name: subscribers-import-ids
-- The ids of one batch of an import believed to name only new people (the batch before it did),
-- drawn from the identity's sequence, one per address of $1 (text, a line per row, as in
-- subscribers-import-new), in order; NULL for a suppressed address, which is skipped. The importer
-- then writes the people, their lists (confirmed) and one consent record each with COPY
-- (service/subscribers/import_copy.py), from a savepoint: an address already held (by anyone:
-- another batch, another row of this one in another case, a transaction that committed it
-- meanwhile) fails the COPY with a unique violation of subscribers_email_key, and the batch is sent
-- again with subscribers-import-new. Inserting through ON CONFLICT instead, and looking each
-- address up first, cost 0.5 s of 2.6 s for 100,000 new people; one INSERT ... SELECT over the
-- batch's columns instead of COPY, 1.9-2.3 s of PostgreSQL's CPU against 1.4 s.
-- email_hash()'s own expression, as in subscribers-import-new.
SELECT coalesce(array_agg(CASE WHEN NOT EXISTS (SELECT FROM suppressions x
                                                WHERE x.email_hash = sha256(convert_to(lower(b.email), 'UTF8')))
                               THEN nextval((SELECT pg_get_serial_sequence('subscribers', 'id')::regclass)) END
                          ORDER BY b.n), '{}')
FROM unnest(string_to_array($1, E'\n')) WITH ORDINALITY AS b(email, n);

-- name: subscribers-import-supersede
-- Before the merge at the end of import $1: a person a batch created ($2, from the lines $3) whose
-- address a staged row names again is settled by line, as the last row wins. When a staged row
-- is later, the person is deleted (with their lists and consent record, by the reference
-- triggers) so that the merge creates them from that row alone; otherwise the staged rows are
-- the superseded ones and are dropped. Only a batch of the same import wrote these people, and
-- nobody else can see them yet. Returns how many people were deleted.
WITH last AS (
    SELECT lower(email) AS address, max(line) AS line FROM import_staging WHERE import_id = $1 GROUP BY 1
), mine AS MATERIALIZED (
    SELECT c.id, l.address, l.line > c.line AS superseded
    FROM unnest($2::bigint[], $3::integer[]) AS c(id, line)
    JOIN subscribers s ON s.id = c.id
    JOIN last l ON l.address = lower(s.email)
), undone AS (
    DELETE FROM subscribers s USING mine m WHERE s.id = m.id AND m.superseded
    RETURNING s.id
), dropped AS (
    DELETE FROM import_staging t USING mine m
    WHERE t.import_id = $1 AND lower(t.email) = m.address AND NOT m.superseded
)
SELECT count(*) FROM undone;

-- name: subscribers-confirm
-- Double opt-in, step two, for each person of $1 in turn, in one statement (subscriber_confirm(),
-- migration 0011): pending lists confirmed, the person active, consent and event recorded. Per
-- person, in the order given: whether they are on file and not suppressed, and the slugs confirmed
-- now. The caller gives the people in id order, so two batches lock them in the same order.
SELECT r.known, r.confirmed
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::inet[], $5::text[], $6::text[])
     WITH ORDINALITY AS a(person, message_id, source, ip, user_agent, wording, n)
CROSS JOIN LATERAL subscriber_confirm(a.person, a.message_id, a.source, a.ip, a.user_agent, a.wording) r
ORDER BY a.n;

-- name: subscribers-unsubscribe
-- For each person of $1 in turn, leave one list ($2) or all ($2 NULL), in one statement
-- (subscriber_unsubscribe(), migration 0011): status settled, the edition ($3) counting it, consent
-- and event recorded. Per person, in the order given: whether they are on file, the slugs left, and
-- the names of the lists still confirmed. The caller gives the people in id order (see above).
SELECT r.known, r.left_lists, r.remaining
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::inet[], $7::text[], $8::text[])
     WITH ORDINALITY AS a(person, from_list, edition, message_id, source, ip, user_agent, wording, n)
CROSS JOIN LATERAL subscriber_unsubscribe(a.person, a.from_list, a.edition, a.message_id, a.source, a.ip,
                                          a.user_agent, a.wording) r
ORDER BY a.n;
