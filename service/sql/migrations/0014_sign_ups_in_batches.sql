-- Sign-ups decided many at a time (issue 14: POST /subscribe at a fraction of its cost).
--
-- Each form sign-up was decided on its own after the answer: BEGIN, subscriber_request()
-- (the person, the pending lists, the consent record: three INSERT statements, each paying a
-- statement-level reference trigger from 0009), the mail, COMMIT. Under load that was most of
-- PostgreSQL's work per sign-up, paid once per person. subscribers_request() below asks for
-- any number of people in one statement, so the statements, triggers and the commit are paid
-- once per batch. It is now the only place the rule lives: subscriber_request(), the API's
-- one-person form, asks it for one.
--
-- Same rule, same locks as 0011: nothing for a suppressed address; a new person is created
-- pending, a pending one takes the newest details, anyone who has confirmed before keeps
-- theirs; the lists asked for that are not confirmed become pending and a consent record names
-- them. People are written in the order of their lower-cased address, so two batches that
-- share people lock them in the same order and cannot deadlock each other.

-- sign_ups: a JSON array of {"sign_up": {email, name, agency, role, attributes, lists: [{id}]},
-- "actor": {source, ip, user_agent, wording_version}} (the form's stored request), at most one
-- per address (lower-cased): one statement cannot change a person twice. One row per element,
-- in the order given (ord, from 1): the person and the lists now waiting for confirmation, in
-- the order asked; person NULL when the address is suppressed.
CREATE FUNCTION subscribers_request(sign_ups jsonb)
RETURNS TABLE (ord bigint, asked_email text, person_id bigint, person_email text, waiting_slugs text[],
               waiting_names text[])
LANGUAGE sql VOLATILE AS $$
    WITH asked AS (
        SELECT t.ord, t.item -> 'sign_up' AS sign_up, t.item -> 'actor' AS actor,
               t.item -> 'sign_up' ->> 'email' AS email
        FROM jsonb_array_elements(sign_ups) WITH ORDINALITY AS t(item, ord)
    ), allowed AS (
        SELECT asked.* FROM asked
        WHERE NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = email_hash(asked.email))
    ), people AS (
        INSERT INTO subscribers AS s (email, name, agency, role, attributes)
        SELECT email, sign_up ->> 'name', sign_up ->> 'agency', sign_up ->> 'role', sign_up -> 'attributes'
        FROM allowed
        ORDER BY lower(email)
        ON CONFLICT (lower(email)) DO UPDATE
        SET name = CASE WHEN s.status = 'pending' THEN excluded.name ELSE s.name END,
            agency = CASE WHEN s.status = 'pending' THEN excluded.agency ELSE s.agency END,
            role = CASE WHEN s.status = 'pending' THEN excluded.role ELSE s.role END,
            attributes = CASE WHEN s.status = 'pending' THEN s.attributes || excluded.attributes ELSE s.attributes END,
            updated_at = now()
        RETURNING s.id, s.email
    ), wanted AS (
        SELECT allowed.ord, people.id AS person_id, (l.list ->> 'id')::bigint AS list_id, l.n
        FROM allowed
        JOIN people ON lower(people.email) = lower(allowed.email)
        CROSS JOIN LATERAL jsonb_array_elements(allowed.sign_up -> 'lists') WITH ORDINALITY AS l(list, n)
    ), waiting AS (
        INSERT INTO subscriptions AS sub (list_id, subscriber_id, status)
        SELECT list_id, person_id, 'pending' FROM wanted
        ORDER BY person_id, list_id
        ON CONFLICT (list_id, subscriber_id) DO UPDATE SET status = 'pending', updated_at = now()
        WHERE sub.status <> 'confirmed'
        RETURNING sub.list_id, sub.subscriber_id
    ), named AS (
        SELECT wanted.ord, array_agg(l.slug ORDER BY wanted.n) AS slugs, array_agg(l.name ORDER BY wanted.n) AS names
        FROM waiting
        JOIN wanted ON wanted.person_id = waiting.subscriber_id AND wanted.list_id = waiting.list_id
        JOIN lists l ON l.id = waiting.list_id
        GROUP BY wanted.ord
    ), consented AS (
        INSERT INTO consents (subscriber_id, action, lists, source, ip, user_agent, wording_version)
        SELECT people.id, 'subscribe', named.slugs, allowed.actor ->> 'source', (allowed.actor ->> 'ip')::inet,
               left(allowed.actor ->> 'user_agent', 500), allowed.actor ->> 'wording_version'
        FROM named
        JOIN allowed ON allowed.ord = named.ord
        JOIN people ON lower(people.email) = lower(allowed.email)
        ORDER BY people.id
    )
    SELECT asked.ord, asked.email, people.id, people.email, coalesce(named.slugs, '{}'), coalesce(named.names, '{}')
    FROM asked
    LEFT JOIN allowed ON allowed.ord = asked.ord
    LEFT JOIN people ON lower(people.email) = lower(allowed.email)
    LEFT JOIN named ON named.ord = asked.ord
    ORDER BY asked.ord
$$;

-- One person: the same rule, through the same statement. No row when the address is suppressed.
CREATE OR REPLACE FUNCTION subscriber_request(
    new_email text, new_name text, new_agency text, new_role text, new_attributes jsonb, wanted bigint[],
    consent_source text, consent_ip inet, consent_user_agent text, consent_wording text
) RETURNS TABLE (person_id bigint, person_email text, waiting_slugs text[], waiting_names text[])
LANGUAGE sql VOLATILE AS $$
    SELECT r.person_id, r.person_email, r.waiting_slugs, r.waiting_names
    FROM subscribers_request(jsonb_build_array(jsonb_build_object(
        'sign_up', jsonb_build_object(
            'email', new_email, 'name', new_name, 'agency', new_agency, 'role', new_role,
            'attributes', new_attributes,
            'lists', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', w.list_id) ORDER BY w.n), '[]')
                      FROM unnest(wanted) WITH ORDINALITY AS w(list_id, n))),
        'actor', jsonb_build_object(
            'source', consent_source, 'ip', consent_ip, 'user_agent', consent_user_agent,
            'wording_version', consent_wording)
    ))) AS r
    WHERE r.person_id IS NOT NULL
$$;

-- A confirmation mail is stored as what it needs (the person, the address, the names of the lists
-- waiting) and composed by the worker as it sends it (service/mail/confirmation.py): the deciding
-- statement queues the mails with the people, and the process that answered composes nothing.
-- Other system mails still carry their message.
ALTER TABLE system_mails
    ALTER COLUMN message DROP NOT NULL,
    ADD COLUMN lists text[],
    ADD CONSTRAINT system_mails_content CHECK (message IS NOT NULL OR (kind = 'confirm' AND lists IS NOT NULL));
