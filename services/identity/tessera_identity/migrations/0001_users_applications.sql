-- identity's core tables (Logto §2), with tenant_id on every row.
-- Later migrations: 0002-0099 users/applications, 0100+ the OIDC provider.

CREATE TABLE users (
    tenant_id                   text NOT NULL DEFAULT 'default',
    id                          varchar(12) PRIMARY KEY,
    username                    varchar(128),
    primary_email               varchar(128),
    primary_phone               varchar(128),
    password_encrypted          varchar(256),
    password_encryption_method  varchar(16),   -- 'Argon2id' (ours) or 'Argon2i' (imported from Logto)
    name                        varchar(128),
    avatar                      varchar(2048),
    application_id              varchar(21),
    identities                  jsonb NOT NULL DEFAULT '{}',
    custom_data                 jsonb NOT NULL DEFAULT '{}',
    is_suspended                boolean NOT NULL DEFAULT false,
    last_sign_in_at             timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now()
);
-- Username is case-sensitive, email case-insensitive, phone exact (Logto §2).
CREATE UNIQUE INDEX users_username ON users (tenant_id, username);
CREATE UNIQUE INDEX users_primary_email ON users (tenant_id, lower(primary_email));
CREATE UNIQUE INDEX users_primary_phone ON users (tenant_id, primary_phone);
CREATE INDEX users_created_at ON users (tenant_id, created_at DESC);

CREATE TABLE applications (
    tenant_id               text NOT NULL DEFAULT 'default',
    id                      varchar(21) PRIMARY KEY,
    name                    varchar(256) NOT NULL,
    secret                  varchar(64) NOT NULL,
    description             text,
    type                    varchar(32) NOT NULL,
    oidc_client_metadata    jsonb NOT NULL,
    custom_client_metadata  jsonb NOT NULL DEFAULT '{}',
    created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX applications_created_at ON applications (tenant_id, created_at DESC);
