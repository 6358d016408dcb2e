-- The OpenID Provider's state (logto-behaviour.md §5): signing keys, interactions,
-- sessions, grants, authorization codes, refresh tokens and opaque access tokens.
-- Codes and tokens are stored as SHA-256 digests: a copy of this schema yields no usable token.
-- JWT access tokens (for a resource) have no row: they are verified by signature alone.

CREATE TABLE oidc_signing_keys (
    tenant_id               text NOT NULL,
    kid                     text PRIMARY KEY,
    alg                     text NOT NULL,
    -- AES-256-GCM (nonce || ciphertext) of the PKCS#8 PEM, under a key derived from
    -- TESSERA_KEY_ENCRYPTION_KEY; `kek_id` tells which one, so a wrong key fails loudly.
    private_key_encrypted   bytea NOT NULL,
    kek_id                  text NOT NULL,
    public_jwk              jsonb NOT NULL,
    -- next: published in the JWKS, not signing yet; current: signs; retired: published
    -- until `expires_at`, when the last token it signed has expired.
    status                  text NOT NULL CHECK (status IN ('next', 'current', 'retired')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    activated_at            timestamptz,
    retired_at              timestamptz,
    expires_at              timestamptz
);
CREATE UNIQUE INDEX oidc_signing_keys_one_current ON oidc_signing_keys (tenant_id) WHERE status = 'current';

CREATE TABLE oidc_interactions (
    tenant_id       text NOT NULL,
    uid             text PRIMARY KEY,
    client_id       text NOT NULL,
    params          jsonb NOT NULL,
    prompt          jsonb NOT NULL,
    session_id      text,
    session_account_id text,
    result          jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX oidc_interactions_expires ON oidc_interactions (expires_at);

CREATE TABLE oidc_sessions (
    tenant_id       text NOT NULL,
    id              text PRIMARY KEY,
    account_id      text NOT NULL,
    login_at        timestamptz NOT NULL,
    amr             jsonb NOT NULL DEFAULT '[]',
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX oidc_sessions_account ON oidc_sessions (tenant_id, account_id);

CREATE TABLE oidc_grants (
    tenant_id       text NOT NULL,
    id              text PRIMARY KEY,
    account_id      text NOT NULL,
    client_id       text NOT NULL,
    session_id      text,
    oidc_scopes     text[] NOT NULL DEFAULT '{}',
    -- {"<resource indicator>": ["scope", ...]}
    resource_scopes jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX oidc_grants_account ON oidc_grants (tenant_id, account_id);
CREATE INDEX oidc_grants_session ON oidc_grants (session_id, client_id);

CREATE TABLE oidc_authorization_codes (
    code_hash       bytea PRIMARY KEY,
    tenant_id       text NOT NULL,
    grant_id        text NOT NULL,
    client_id       text NOT NULL,
    account_id      text NOT NULL,
    session_id      text,
    interaction_id  text,
    redirect_uri    text NOT NULL,
    scope           text NOT NULL,
    resources       text[] NOT NULL DEFAULT '{}',
    code_challenge  text,
    nonce           text,
    auth_time       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    consumed_at     timestamptz,
    -- The token family the exchange started: revoked when the code is replayed (RFC 6749 §4.1.2).
    family_id       text
);
CREATE INDEX oidc_authorization_codes_grant ON oidc_authorization_codes (grant_id);
CREATE INDEX oidc_authorization_codes_account ON oidc_authorization_codes (tenant_id, account_id);

CREATE TABLE oidc_refresh_tokens (
    token_hash      bytea PRIMARY KEY,
    id              text NOT NULL,
    tenant_id       text NOT NULL,
    -- Every refresh token descending from one code exchange shares a family; replaying a
    -- consumed token past the reuse interval revokes the family.
    family_id       text NOT NULL,
    grant_id        text NOT NULL,
    client_id       text NOT NULL,
    account_id      text NOT NULL,
    session_id      text,
    scope           text NOT NULL,
    nonce           text,
    auth_time       timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- When the family's first token was issued (rotation stops after a year, as oidc-provider).
    family_created_at timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    consumed_at     timestamptz
);
CREATE INDEX oidc_refresh_tokens_family ON oidc_refresh_tokens (family_id);
CREATE INDEX oidc_refresh_tokens_grant ON oidc_refresh_tokens (grant_id);
CREATE INDEX oidc_refresh_tokens_account ON oidc_refresh_tokens (tenant_id, account_id);
CREATE INDEX oidc_refresh_tokens_expires ON oidc_refresh_tokens (expires_at);

-- Opaque access tokens: the ones issued without a resource, good for /oidc/me only.
CREATE TABLE oidc_access_tokens (
    token_hash      bytea PRIMARY KEY,
    id              text NOT NULL,
    tenant_id       text NOT NULL,
    family_id       text,
    grant_id        text,
    client_id       text NOT NULL,
    account_id      text,
    scope           text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX oidc_access_tokens_family ON oidc_access_tokens (family_id);
CREATE INDEX oidc_access_tokens_grant ON oidc_access_tokens (grant_id);
CREATE INDEX oidc_access_tokens_account ON oidc_access_tokens (tenant_id, account_id);
CREATE INDEX oidc_access_tokens_expires ON oidc_access_tokens (expires_at);

-- What the OIDC context seeded per tenant (e.g. which application is the admin client).
CREATE TABLE oidc_seed_state (
    tenant_id       text NOT NULL,
    key             text NOT NULL,
    value           jsonb NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
