-- The sign-in experience (Logto's sign_in_experiences: one row, id `default`, per tenant).
CREATE TABLE sign_in_experiences (
    tenant_id                         text NOT NULL DEFAULT 'default',
    id                                varchar(21) NOT NULL,
    color                             jsonb NOT NULL,
    branding                          jsonb NOT NULL DEFAULT '{}',
    language_info                     jsonb NOT NULL,
    terms_of_use_url                  varchar(2048),
    privacy_policy_url                varchar(2048),
    sign_in                           jsonb NOT NULL,
    sign_up                           jsonb NOT NULL,
    social_sign_in_connector_targets  jsonb NOT NULL DEFAULT '[]',
    sign_in_mode                      text NOT NULL DEFAULT 'SignInAndRegister',
    custom_css                        text,
    custom_content                    jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, id)
);

-- Custom phrases, one translation tree per language tag.
CREATE TABLE custom_phrases (
    tenant_id     text NOT NULL DEFAULT 'default',
    id            varchar(21) NOT NULL,
    language_tag  varchar(16) NOT NULL,
    translation   jsonb NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, language_tag)
);

-- Logto's logto_configs, for the keys this service owns (`adminConsole`).
CREATE TABLE configs (
    tenant_id  text NOT NULL DEFAULT 'default',
    key        text NOT NULL,
    value      jsonb NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- Read model of the connectors service's instances (from connectors.connector.* events).
CREATE TABLE connectors (
    tenant_id             text NOT NULL DEFAULT 'default',
    id                    text NOT NULL,
    connector_factory_id  text NOT NULL,
    type                  text NOT NULL,
    target                text NOT NULL,
    platform              text,
    snapshot              jsonb NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX connectors_type ON connectors (tenant_id, type);

-- Logto's interaction result (event, identifiers, profile, ...) for an OIDC interaction of
-- identity's; `uid` is that interaction's id. The profile may hold the new password in clear
-- until submit (as Logto's interaction result does): rows go at submit, abort or expiry.
CREATE TABLE interactions (
    tenant_id          text NOT NULL DEFAULT 'default',
    uid                text NOT NULL,
    event              text NOT NULL,
    identifiers        jsonb NOT NULL DEFAULT '[]',
    profile            jsonb,
    account_id         text,
    connector_session  jsonb,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, uid)
);
CREATE INDEX interactions_expires_at ON interactions (expires_at);

-- Verification codes of interactions (Logto's passcodes), keyed by (interaction, type).
CREATE TABLE verification_codes (
    tenant_id        text NOT NULL DEFAULT 'default',
    id               text NOT NULL,
    interaction_uid  text NOT NULL,
    type             text NOT NULL,
    email            text,
    phone            text,
    code             varchar(6) NOT NULL,
    consumed         boolean NOT NULL DEFAULT false,
    try_count        integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX verification_codes_interaction ON verification_codes (tenant_id, interaction_uid, type, created_at DESC);
