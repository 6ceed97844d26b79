-- Signed event webhooks (DESIGN.md "Reports, proofs, events, guard, view in browser").
--
-- event_endpoints: where other services want to hear about readers, bounces and editions.
-- The secret signs every message (Standard Webhooks); it is shown once, when the endpoint is
-- made, and must be kept in clear here because signing needs it.
CREATE TABLE event_endpoints (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url         text NOT NULL CHECK (length(url) <= 2000),
    events      text[] NOT NULL CHECK (cardinality(events) > 0),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    secret      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- event_messages: the durable outbox. One row per (event, endpoint), written in the same
-- transaction as the change that caused the event, so an event is never lost and never
-- sent for a change that rolled back. The worker sends due rows: next_attempt_at is also the
-- lease (a claim pushes it past the request timeout, so a dead worker's message comes back).
-- webhook_id is the Standard Webhooks message id: one per event, the same on every retry.
CREATE TABLE event_messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id     bigint NOT NULL REFERENCES event_endpoints (id) ON DELETE CASCADE,
    webhook_id      text NOT NULL,
    type            text NOT NULL,
    data            jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);
CREATE INDEX event_messages_due_idx ON event_messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX event_messages_endpoint_idx ON event_messages (endpoint_id, id);
-- Erasure finds a person's messages to scrub their address from them.
CREATE INDEX event_messages_subscriber_idx ON event_messages (((data -> 'subscriber' ->> 'id')::bigint));

-- event_attempts: every try of a message, with the endpoint's HTTP status and the start of its
-- reply (or what went wrong: a timeout, a refused address), shown in the attempts listing.
CREATE TABLE event_attempts (
    message_id bigint NOT NULL REFERENCES event_messages (id) ON DELETE CASCADE,
    attempt    integer NOT NULL,
    tried_at   timestamptz NOT NULL DEFAULT now(),
    status     integer,
    reply      text,
    PRIMARY KEY (message_id, attempt)
);
