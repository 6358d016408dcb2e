-- Hooks (Logto's `hooks` table), plus when their deliveries started failing without a success.
CREATE TABLE hooks (
    tenant_id      text NOT NULL DEFAULT 'default',
    id             varchar(21) PRIMARY KEY,
    name           varchar(256) NOT NULL DEFAULT '',
    event          varchar(128),
    events         jsonb NOT NULL DEFAULT '[]',
    config         jsonb NOT NULL,
    signing_key    varchar(64) NOT NULL,
    enabled        boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    failing_since  timestamptz
);
CREATE INDEX hooks_created_at ON hooks (tenant_id, created_at DESC, id DESC);

-- One row per (hook, event): written in the transaction that consumed the event, sent by the
-- scheduler. `id` is the stable delivery id receivers deduplicate on (`webhook-id`).
CREATE TABLE deliveries (
    tenant_id        text NOT NULL DEFAULT 'default',
    id               varchar(21) PRIMARY KEY,
    hook_id          varchar(21) NOT NULL REFERENCES hooks (id) ON DELETE CASCADE,
    event            varchar(128) NOT NULL,
    source_event_id  text NOT NULL,
    body             text NOT NULL,            -- the exact JSON sent (and signed) at every attempt
    status           text NOT NULL DEFAULT 'pending',  -- pending | succeeded | exhausted
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    next_attempt_at  timestamptz,
    lease_token      text,
    lease_until      timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (hook_id, source_event_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_hook ON deliveries (hook_id, created_at DESC, id DESC);

-- Every attempt with its outcome: the source of execution stats and recent logs.
CREATE TABLE delivery_attempts (
    tenant_id    text NOT NULL DEFAULT 'default',
    id           varchar(21) PRIMARY KEY,
    delivery_id  varchar(21) NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    hook_id      varchar(21) NOT NULL,
    number       integer NOT NULL,
    event        varchar(128) NOT NULL,
    result       text NOT NULL,                -- Success | Error
    status_code  integer,
    response     jsonb,                        -- {statusCode, body} when the receiver answered
    error        text,
    created_at   timestamptz NOT NULL,
    UNIQUE (delivery_id, number)
);
CREATE INDEX delivery_attempts_hook ON delivery_attempts (hook_id, created_at DESC, id DESC);
