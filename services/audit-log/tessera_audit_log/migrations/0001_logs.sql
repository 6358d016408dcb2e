-- Log entries, one per event (Logto's `logs` table plus the event that produced it).
CREATE TABLE logs (
    tenant_id   text NOT NULL DEFAULT 'default',
    id          varchar(21) PRIMARY KEY,
    key         varchar(128) NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    event_id    text NOT NULL UNIQUE
);
CREATE INDEX logs_created_at ON logs (tenant_id, created_at DESC, id DESC);
CREATE INDEX logs_key ON logs (tenant_id, key, created_at DESC);
CREATE INDEX logs_user_id ON logs (tenant_id, (payload->>'userId'), created_at DESC);
CREATE INDEX logs_application_id ON logs (tenant_id, (payload->>'applicationId'), created_at DESC);
CREATE INDEX logs_hook_id ON logs (tenant_id, (payload->>'hookId'), created_at DESC);

-- Read model of users for the dashboard's totals and new-user counts.
CREATE TABLE dashboard_users (
    tenant_id   text NOT NULL DEFAULT 'default',
    user_id     text NOT NULL,
    created_at  timestamptz NOT NULL,
    deleted_at  timestamptz,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX dashboard_users_created_at ON dashboard_users (tenant_id, created_at) WHERE deleted_at IS NULL;

-- Who was active on which day (a successful token exchange), for DAU/WAU/MAU.
CREATE TABLE dashboard_activity (
    tenant_id   text NOT NULL DEFAULT 'default',
    day         date NOT NULL,
    user_id     text NOT NULL,
    PRIMARY KEY (tenant_id, day, user_id)
);
