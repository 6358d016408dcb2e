-- rbac's tables (Logto §2: resources, scopes, roles, roles_scopes, users_roles,
-- applications_roles), plus the read models of identity's users and applications.
-- Keys lead with tenant_id, so the fixed seeded ids (`management-api`, `admin-role`, ...)
-- exist once per tenant and every lookup is (tenant_id, ...).
-- created_at on every table is ours (Logto's resources and roles have none): lists need a
-- stable order to paginate.

CREATE TABLE resources (
    tenant_id         text NOT NULL DEFAULT 'default',
    id                varchar(21) NOT NULL,
    name              text NOT NULL,
    indicator         text NOT NULL,
    is_default        boolean NOT NULL DEFAULT false,
    access_token_ttl  bigint NOT NULL DEFAULT 3600,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id)
);
-- The token endpoint finds a resource by indicator on every token.
CREATE UNIQUE INDEX resources_indicator ON resources (tenant_id, indicator);
-- At most one default resource per tenant.
CREATE UNIQUE INDEX resources_one_default ON resources (tenant_id) WHERE is_default;
CREATE INDEX resources_created_at ON resources (tenant_id, created_at, id);

CREATE TABLE scopes (
    tenant_id    text NOT NULL DEFAULT 'default',
    id           varchar(21) NOT NULL,
    resource_id  varchar(21) NOT NULL,
    name         varchar(256) NOT NULL,
    description  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, resource_id) REFERENCES resources (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX scopes_name_per_resource ON scopes (tenant_id, resource_id, name);
CREATE INDEX scopes_created_at ON scopes (tenant_id, resource_id, created_at, id);

CREATE TABLE roles (
    tenant_id    text NOT NULL DEFAULT 'default',
    id           varchar(21) NOT NULL,
    name         varchar(128) NOT NULL,
    description  varchar(128) NOT NULL,
    type         text NOT NULL DEFAULT 'User' CHECK (type IN ('User', 'MachineToMachine')),
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX roles_name ON roles (tenant_id, name);
-- GET /roles: newest first, a page at a time.
CREATE INDEX roles_created_at ON roles (tenant_id, created_at DESC, id DESC);

CREATE TABLE roles_scopes (
    tenant_id   text NOT NULL DEFAULT 'default',
    id          varchar(21) NOT NULL,
    role_id     varchar(21) NOT NULL,
    scope_id    varchar(21) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, scope_id) REFERENCES scopes (tenant_id, id) ON DELETE CASCADE
);
-- (role -> scopes) for the token endpoint, and uniqueness of a link.
CREATE UNIQUE INDEX roles_scopes_role_scope ON roles_scopes (tenant_id, role_id, scope_id);
-- (scope -> roles) for the cascade of a deleted scope or resource.
CREATE INDEX roles_scopes_scope ON roles_scopes (tenant_id, scope_id);

-- Read model of identity's users (from identity.user.* events): what featuredUsers,
-- GET /roles/:id/users and the "does this user exist" checks need. A deleted user stays as a
-- tombstone (profile fields cleared) so a late or redelivered older event cannot bring it back.
CREATE TABLE directory_users (
    tenant_id       text NOT NULL DEFAULT 'default',
    id              varchar(12) NOT NULL,
    username        varchar(128),
    primary_email   varchar(128),
    primary_phone   varchar(128),
    name            varchar(128),
    avatar          varchar(2048),
    application_id  varchar(21),
    custom_data     jsonb NOT NULL DEFAULT '{}',
    is_suspended    boolean NOT NULL DEFAULT false,
    last_sign_in_at bigint,          -- ms, as identity reports it
    created_at      timestamptz NOT NULL,
    deleted_at      timestamptz,
    -- occurred_at (ms) of the last identity event applied to this row: an older one is ignored.
    last_event_at   bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX directory_users_created_at ON directory_users (tenant_id, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;

-- Read model of identity's applications (identity.application.* events), for the
-- machine-to-machine role routes (existence, type) and featuredApplications.
CREATE TABLE directory_applications (
    tenant_id      text NOT NULL DEFAULT 'default',
    id             varchar(21) NOT NULL,
    name           varchar(256) NOT NULL,
    description    text,
    type           text NOT NULL,
    created_at     timestamptz NOT NULL,
    deleted_at     timestamptz,
    last_event_at  bigint NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE users_roles (
    tenant_id   text NOT NULL DEFAULT 'default',
    id          varchar(21) NOT NULL,
    user_id     varchar(12) NOT NULL,
    role_id     varchar(21) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, user_id) REFERENCES directory_users (tenant_id, id) ON DELETE CASCADE
);
-- (user -> roles) for the token endpoint, and uniqueness of a link.
CREATE UNIQUE INDEX users_roles_user_role ON users_roles (tenant_id, user_id, role_id);
-- (role -> users) in link order: usersCount, featuredUsers, GET /roles/:id/users.
CREATE INDEX users_roles_role ON users_roles (tenant_id, role_id, created_at, id);

-- No foreign key to directory_applications: identity links the admin role to an application
-- it vouches for (rpc) before rbac may have seen the application's created event.
CREATE TABLE applications_roles (
    tenant_id       text NOT NULL DEFAULT 'default',
    id              varchar(21) NOT NULL,
    application_id  varchar(21) NOT NULL,
    role_id         varchar(21) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, role_id) REFERENCES roles (tenant_id, id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX applications_roles_application_role
    ON applications_roles (tenant_id, application_id, role_id);
CREATE INDEX applications_roles_role ON applications_roles (tenant_id, role_id, created_at, id);

-- How far the read models have got: one row per source stream, written with each applied
-- event (what GET /internal/read-models reports, with the consumer's pending count).
CREATE TABLE read_model_progress (
    source             text PRIMARY KEY,
    events_applied     bigint NOT NULL DEFAULT 0,
    last_event_id      text,
    last_occurred_at   bigint,        -- ms, when identity committed the event
    last_applied_at    bigint         -- ms, when rbac applied it
);
