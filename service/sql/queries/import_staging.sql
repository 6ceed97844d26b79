-- name: import-plan-settings
-- For the rest of the importing transaction: hash and sort a batch's or the merge's rows in
-- memory. (Each statement is planned for the rows it meets by being prepared afresh, not by
-- plan_cache_mode = force_custom_plan: that also plans email_hash(), an SQL function, again at
-- each call, twice per new person.)
SELECT set_config('work_mem', '64MB', true);

-- name: import-staging-analyze
-- Statistics that count the rows just staged, so that the merge is planned for them (only
-- the columns the merge filters, groups and joins on: the others cost time and guide nothing).
-- ANALYZE holds its lock until the import commits; an import running beside another skips it
-- rather than wait for the other to finish (its plans then lean on index lookups, still linear).
ANALYZE (SKIP_LOCKED) import_staging (import_id, line, email);

-- name: import-staging-estimate
-- How many of import $1's staged rows the planner expects. ANALYZE above is skipped while
-- autovacuum or another import holds the table; the statistics then describe earlier imports,
-- in which this one's rows look absent, and a plan for one row that meets 100,000 loops over
-- them for each of them (a merge ran for minutes). The importer compares this with the rows it
-- staged (import-plan-hash-joins).
EXPLAIN (FORMAT JSON) SELECT FROM import_staging WHERE import_id = $1;

-- name: import-plan-hash-joins
-- For the rest of the importing transaction, when the staged rows' statistics are stale
-- (import-staging-estimate): no nested loops where a hash join can be used, so that a wrong
-- estimate costs a scan of the tables joined, never a loop over the staged rows for each one.
SELECT set_config('enable_nestloop', 'off', true);

-- name: import-staging-settle
-- Drop one import's ($1) staged rows that a later staged row for the same address supersedes
-- (the last row wins). Grouped by hashing, not sorted: nearly every address appears once.
-- Suppressed addresses were never staged (subscribers-import-new).
DELETE FROM import_staging t
USING (SELECT lower(email) AS address, max(line) AS last
       FROM import_staging WHERE import_id = $1 GROUP BY 1 HAVING count(*) > 1) d
WHERE t.import_id = $1 AND lower(t.email) = d.address AND t.line < d.last;

-- name: import-staging-clear
-- Remove one import's staged rows once merged (they never outlive the import's transaction).
DELETE FROM import_staging WHERE import_id = $1;

-- name: import-known-terms
-- Every agency, role and list slug (with the list's id), so import rows are checked without a query each.
SELECT 'agency' AS kind, slug, NULL::bigint AS id FROM agencies
UNION ALL SELECT 'role', slug, NULL FROM roles
UNION ALL SELECT 'list', slug, id FROM lists;
