-- A reader's own changes, each one statement: asking to subscribe, confirming, unsubscribing.
--
-- Each was a transaction of six to eight statements (BEGIN, lock, change, settle, consent,
-- event, COMMIT), one round trip each, and round trips were most of what a one-click
-- unsubscribe or a confirmation cost. Each function below runs the same statements in the same
-- order inside the server, so the guarantees stay those of the statements: the person's row is
-- locked first, so that two changes to one person take turns; each statement takes a fresh
-- snapshot (READ COMMITTED, functions VOLATILE), so a change that waited for the lock sees
-- what the other committed; the consent record and the outbox row are written with the change
-- or not at all. Called alone, a function is its own transaction; inside a caller's
-- transaction it is part of it.
--
-- Two rules that the named queries also use live here once: settling a person's status after
-- their lists changed (subscriber-settle-status) and recording an event about a reader
-- (event-emit-subscriber).

-- After lists changed: active with a confirmed list, unsubscribed without one. Bounced and
-- complained people stay as bounce handling left them. Returns the new status when it changed.
CREATE FUNCTION settle_subscriber_status(person bigint) RETURNS text
LANGUAGE sql VOLATILE AS $$
    UPDATE subscribers s
    SET status = target.status,
        confirmed_at = CASE WHEN target.status = 'active' THEN coalesce(s.confirmed_at, now()) ELSE s.confirmed_at END,
        updated_at = now()
    FROM (
        SELECT CASE WHEN EXISTS (
            SELECT 1 FROM subscriptions WHERE subscriber_id = person AND status = 'confirmed'
        ) THEN 'active' ELSE 'unsubscribed' END AS status
    ) AS target
    WHERE s.id = person AND s.status IN ('active', 'pending', 'unsubscribed') AND s.status <> target.status
    RETURNING s.status
$$;

-- Record an event about a reader for every endpoint listening for its type: the reader as they
-- are now, plus the event's own fields.
CREATE FUNCTION emit_subscriber_event(event_type text, message_id text, person bigint, fields jsonb) RETURNS void
LANGUAGE sql VOLATILE AS $$
    INSERT INTO event_messages (endpoint_id, webhook_id, type, data)
    SELECT e.id, message_id, event_type,
           jsonb_build_object('subscriber', jsonb_build_object(
               'id', s.id, 'email', s.email, 'name', s.name, 'agency', s.agency, 'role', s.role, 'status', s.status
           )) || fields
    FROM event_endpoints e JOIN subscribers s ON s.id = person
    WHERE event_type = ANY (e.events)
$$;

-- Double opt-in, step one: nothing for a suppressed address (no row returned). Otherwise a new
-- person is created pending, a pending one takes the newest details, anyone who has confirmed
-- before keeps theirs; the lists asked for that are not confirmed become pending, and when there
-- are any a consent record names them. Returns the person and the lists now waiting for
-- confirmation, in the order asked (none: nothing to confirm, no mail).
CREATE FUNCTION subscriber_request(
    new_email text, new_name text, new_agency text, new_role text, new_attributes jsonb, wanted bigint[],
    consent_source text, consent_ip inet, consent_user_agent text, consent_wording text
) RETURNS TABLE (person_id bigint, person_email text, waiting_slugs text[], waiting_names text[])
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict error
BEGIN
    IF EXISTS (SELECT 1 FROM suppressions WHERE email_hash = email_hash(new_email)) THEN
        RETURN;
    END IF;
    INSERT INTO subscribers AS s (email, name, agency, role, attributes)
    VALUES (new_email, new_name, new_agency, new_role, new_attributes)
    ON CONFLICT (lower(email)) DO UPDATE
    SET name = CASE WHEN s.status = 'pending' THEN excluded.name ELSE s.name END,
        agency = CASE WHEN s.status = 'pending' THEN excluded.agency ELSE s.agency END,
        role = CASE WHEN s.status = 'pending' THEN excluded.role ELSE s.role END,
        attributes = CASE WHEN s.status = 'pending' THEN s.attributes || excluded.attributes ELSE s.attributes END,
        updated_at = now()
    RETURNING s.id, s.email INTO person_id, person_email;

    WITH asked AS (
        SELECT t.list_id, t.ord FROM unnest(wanted) WITH ORDINALITY AS t(list_id, ord)
    ), waiting AS (
        INSERT INTO subscriptions AS sub (list_id, subscriber_id, status)
        SELECT asked.list_id, person_id, 'pending' FROM asked
        ON CONFLICT (list_id, subscriber_id) DO UPDATE SET status = 'pending', updated_at = now()
        WHERE sub.status <> 'confirmed'
        RETURNING sub.list_id
    )
    SELECT coalesce(array_agg(l.slug ORDER BY asked.ord), '{}'),
           coalesce(array_agg(l.name ORDER BY asked.ord), '{}')
    INTO waiting_slugs, waiting_names
    FROM waiting JOIN asked ON asked.list_id = waiting.list_id JOIN lists l ON l.id = waiting.list_id;

    IF cardinality(waiting_slugs) > 0 THEN
        INSERT INTO consents (subscriber_id, action, lists, source, ip, user_agent, wording_version)
        VALUES (person_id, 'subscribe', waiting_slugs, consent_source, consent_ip, left(consent_user_agent, 500),
                consent_wording);
    END IF;
    RETURN NEXT;
END
$$;

-- Double opt-in, step two: every pending list of the person becomes confirmed and the person
-- active, with a consent record and a subscriber.confirmed event. Returns whether the person
-- is on file and not suppressed, and the slugs confirmed now (none the second time).
CREATE FUNCTION subscriber_confirm(
    person bigint, message_id text, consent_source text, consent_ip inet, consent_user_agent text,
    consent_wording text
) RETURNS TABLE (known boolean, confirmed text[])
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict error
DECLARE
    address text;
BEGIN
    SELECT s.email INTO address FROM subscribers s WHERE s.id = person FOR UPDATE;
    IF address IS NULL OR EXISTS (SELECT 1 FROM suppressions WHERE email_hash = email_hash(address)) THEN
        RETURN QUERY SELECT false, '{}'::text[];
        RETURN;
    END IF;

    WITH done AS (
        UPDATE subscriptions SET status = 'confirmed', updated_at = now()
        WHERE subscriber_id = person AND status = 'pending'
        RETURNING list_id
    )
    SELECT coalesce(array_agg(l.slug ORDER BY l.slug), '{}') INTO confirmed
    FROM done JOIN lists l ON l.id = done.list_id;

    IF cardinality(confirmed) > 0 THEN
        -- The person proved they read this mailbox: active from now (confirmed_at kept if already active).
        UPDATE subscribers s
        SET status = 'active', confirmed_at = CASE WHEN s.status = 'active' THEN s.confirmed_at ELSE now() END,
            updated_at = now()
        WHERE s.id = person;
        INSERT INTO consents (subscriber_id, action, lists, source, ip, user_agent, wording_version)
        VALUES (person, 'confirm', confirmed, consent_source, consent_ip, left(consent_user_agent, 500),
                consent_wording);
        PERFORM emit_subscriber_event('subscriber.confirmed', message_id, person,
                                      jsonb_build_object('lists', confirmed));
    END IF;
    known := true;
    RETURN NEXT;
END
$$;

-- Leave one list (from_list) or every list (NULL). With no confirmed list left the person
-- becomes unsubscribed; the edition whose link was used counts it (if it still exists); a
-- consent record and a subscriber.unsubscribed event name the lists left. A repeat changes
-- nothing. Returns whether the person is on file, the slugs left, and the names of the lists
-- they are still confirmed on (for the page that answers).
CREATE FUNCTION subscriber_unsubscribe(
    person bigint, from_list bigint, edition bigint, message_id text, consent_source text, consent_ip inet,
    consent_user_agent text, consent_wording text
) RETURNS TABLE (known boolean, left_lists text[], remaining text[])
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict error
BEGIN
    PERFORM FROM subscribers s WHERE s.id = person FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, '{}'::text[], '{}'::text[];
        RETURN;
    END IF;

    WITH done AS (
        UPDATE subscriptions SET status = 'unsubscribed', updated_at = now()
        WHERE subscriber_id = person AND (from_list IS NULL OR list_id = from_list) AND status <> 'unsubscribed'
        RETURNING list_id
    )
    SELECT coalesce(array_agg(l.slug ORDER BY l.slug), '{}') INTO left_lists
    FROM done JOIN lists l ON l.id = done.list_id;

    IF cardinality(left_lists) > 0 THEN
        PERFORM settle_subscriber_status(person);
        IF edition IS NOT NULL THEN
            INSERT INTO edition_unsubscribes (edition_id, subscriber_id)
            SELECT edition, person WHERE EXISTS (SELECT 1 FROM editions WHERE id = edition)
            ON CONFLICT DO NOTHING;
        END IF;
        INSERT INTO consents (subscriber_id, action, lists, source, ip, user_agent, wording_version)
        VALUES (person, 'unsubscribe', left_lists, consent_source, consent_ip, left(consent_user_agent, 500),
                consent_wording);
        PERFORM emit_subscriber_event('subscriber.unsubscribed', message_id, person,
                                      jsonb_build_object('lists', left_lists, 'edition_id', edition,
                                                         'source', consent_source));
    END IF;

    known := true;
    SELECT coalesce(array_agg(l.name ORDER BY l.name, l.slug), '{}') INTO remaining
    FROM subscriptions sub JOIN lists l ON l.id = sub.list_id
    WHERE sub.subscriber_id = person AND sub.status = 'confirmed';
    RETURN NEXT;
END
$$;
