-- The whole first schema: readers, lists, consent, suppression, editions,
-- deliveries, bounces, API keys and the system-mail outbox.
-- Statuses are text with CHECK constraints rather than enums so that a later
-- migration can add a value inside a transaction.

-- The one definition of an address's hash, used by suppressions and their
-- checks.  IMMUTABLE is true here because the database encoding is UTF8.
CREATE FUNCTION email_hash(address text) RETURNS bytea
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN sha256(convert_to(lower(address), 'UTF8'));

CREATE TABLE agencies (
    slug       text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE roles (
    slug       text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE lists (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text NOT NULL CONSTRAINT lists_slug_key UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '',
    public      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscribers (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email           text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    email_hash      bytea NOT NULL GENERATED ALWAYS AS (email_hash(email)) STORED,
    name            text NOT NULL DEFAULT '',
    agency          text REFERENCES agencies (slug) ON UPDATE CASCADE,
    role            text REFERENCES roles (slug) ON UPDATE CASCADE,
    attributes      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced', 'complained')),
    soft_bounces    integer NOT NULL DEFAULT 0,
    first_soft_bounce_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    confirmed_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Addresses are unique regardless of case; lookups use lower(email).
CREATE UNIQUE INDEX subscribers_email_key ON subscribers (lower(email));
CREATE INDEX subscribers_email_hash_idx ON subscribers (email_hash);
CREATE INDEX subscribers_agency_idx ON subscribers (agency);
CREATE INDEX subscribers_role_idx ON subscribers (role);
CREATE INDEX subscribers_status_idx ON subscribers (status);
CREATE INDEX subscribers_attributes_idx ON subscribers USING gin (attributes jsonb_path_ops);

CREATE TABLE subscriptions (
    list_id       bigint NOT NULL REFERENCES lists (id) ON DELETE CASCADE,
    subscriber_id bigint NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    status        text NOT NULL CHECK (status IN ('pending', 'confirmed', 'unsubscribed')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (list_id, subscriber_id)
);
CREATE INDEX subscriptions_subscriber_idx ON subscriptions (subscriber_id);

-- Append-only proof of consent; erased together with the person.
CREATE TABLE consents (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id   bigint NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    action          text NOT NULL CHECK (action IN ('subscribe', 'confirm', 'unsubscribe', 'preferences', 'import')),
    lists           text[] NOT NULL DEFAULT '{}',
    source          text NOT NULL,
    ip              inet,
    user_agent      text,
    wording_version text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consents_subscriber_idx ON consents (subscriber_id);

-- Addresses never to mail again.  email_hash (see email_hash()) is what every
-- check uses; email is kept in clear only for people not erased.
CREATE TABLE suppressions (
    email_hash bytea PRIMARY KEY,
    email      text,
    reason     text NOT NULL CHECK (reason IN ('hard_bounce', 'soft_bounce', 'complaint', 'erasure', 'manual')),
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now()
);
-- The operator's listing pages through suppressions newest first.
CREATE INDEX suppressions_created_idx ON suppressions (created_at DESC, email_hash DESC);

CREATE TABLE segments (
    slug       text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    lists      text[] NOT NULL,
    filter     jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE editions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text NOT NULL CONSTRAINT editions_idempotency_key UNIQUE,
    request_hash    bytea NOT NULL,
    subject         text NOT NULL,
    html            text NOT NULL,
    text_body       text,
    from_addr       text NOT NULL,
    reply_to        text,
    list_ids        bigint[] NOT NULL,
    filter          jsonb,
    segment         text,
    status          text NOT NULL
                    CHECK (status IN ('scheduled', 'queued', 'sending', 'paused', 'cancelled', 'done')),
    status_reason   text,
    send_at         timestamptz,
    recipients      integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX editions_active_idx ON editions (status) WHERE status IN ('scheduled', 'queued', 'sending');

-- One row per (edition, subscriber): the uniqueness is the no-double-send guarantee.
-- No foreign keys here, on purpose: the fan-out writes a million rows in one
-- statement, and per-row referential checks tripled its time. Rows are written
-- only by that statement (ids straight from the joined tables), and erasure
-- clears subscriber_id itself (sql/queries/erasure.sql).
CREATE TABLE deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    edition_id      bigint NOT NULL,
    subscriber_id   bigint,
    list_id         bigint,
    status          text NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    leased_by       text,
    last_reply      text,
    message_id      text,
    sent_at         timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deliveries_edition_subscriber_key UNIQUE (edition_id, subscriber_id)
);
-- Claims walk one edition's due copies in time order, never past sent ones.
CREATE INDEX deliveries_due_idx ON deliveries (edition_id, next_attempt_at) WHERE status = 'queued';
CREATE INDEX deliveries_lease_idx ON deliveries (lease_until) WHERE status = 'sending';
CREATE INDEX deliveries_subscriber_idx ON deliveries (subscriber_id);

CREATE TABLE bounce_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id bigint REFERENCES subscribers (id) ON DELETE CASCADE,
    delivery_id   bigint REFERENCES deliveries (id) ON DELETE SET NULL,
    edition_id    bigint REFERENCES editions (id) ON DELETE SET NULL,
    email_hash    bytea NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('hard', 'soft', 'complaint')),
    status        text,
    diagnostic    text,
    source        text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bounce_events_subscriber_idx ON bounce_events (subscriber_id);
CREATE INDEX bounce_events_edition_idx ON bounce_events (edition_id, kind);

-- Unsubscribes counted per edition (the edition's "unsubscribed" figure).
CREATE TABLE edition_unsubscribes (
    edition_id    bigint NOT NULL REFERENCES editions (id) ON DELETE CASCADE,
    subscriber_id bigint NOT NULL REFERENCES subscribers (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (edition_id, subscriber_id)
);

CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix       text NOT NULL CONSTRAINT api_keys_prefix_key UNIQUE,
    secret_hash  bytea NOT NULL,
    scopes       text[] NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Mail a request causes (confirmation, preference links), sent by the worker.
CREATE TABLE system_mails (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id   bigint REFERENCES subscribers (id) ON DELETE CASCADE,
    kind            text NOT NULL,
    recipient       text NOT NULL,
    message         bytea NOT NULL,
    status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    last_reply      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX system_mails_due_idx ON system_mails (next_attempt_at) WHERE status IN ('queued', 'sending');

-- Fixed-window counters for the public form's rate limits, shared by every replica.
CREATE TABLE rate_limits (
    bucket       text NOT NULL,
    window_start timestamptz NOT NULL,
    hits         integer NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, window_start)
);
