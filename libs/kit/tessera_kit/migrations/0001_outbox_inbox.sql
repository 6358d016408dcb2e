-- The kit's tables, created in every service's schema.

-- Transactional outbox: written in the same transaction as the change it announces.
CREATE TABLE outbox (
    seq           bigserial PRIMARY KEY,
    id            text NOT NULL UNIQUE,          -- event id, sent as Nats-Msg-Id
    tenant_id     text NOT NULL DEFAULT 'default',
    subject       text NOT NULL,                 -- event type, namespaced on publish
    aggregate_id  text,
    envelope      bytea NOT NULL,                -- the JSON envelope, as published
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Inbox: event ids a consumer has applied, written with the effect (idempotency).
CREATE TABLE inbox (
    consumer    text NOT NULL,
    event_id    text NOT NULL,
    tenant_id   text NOT NULL DEFAULT 'default',
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Messages a consumer gave up on, after they were sent to the dead-letter subject.
CREATE TABLE dead_letters (
    id           bigserial PRIMARY KEY,
    consumer     text NOT NULL,
    tenant_id    text NOT NULL DEFAULT 'default',
    event_id     text,
    subject      text NOT NULL,
    deliveries   integer NOT NULL,
    error        text NOT NULL,
    payload      bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
