-- The lists one person has a subscription row for, as the API shows them: the one definition
-- behind both the single reader (subscriber-get) and the page of readers (subscriber-page).
CREATE FUNCTION subscriber_lists(person bigint) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        jsonb_agg(jsonb_build_object('slug', l.slug, 'status', sub.status) ORDER BY l.slug),
        '[]'::jsonb
    )
    FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
    WHERE sub.subscriber_id = person
$$;
