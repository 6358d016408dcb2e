-- Connector instances (Logto's `connectors` table). `connector_id` is the factory id; the
-- config holds credentials, so it is stored only encrypted (AES-256-GCM, `kek_id` names
-- the key-encryption key it was sealed with).
CREATE TABLE connectors (
    tenant_id         text NOT NULL DEFAULT 'default',
    id                varchar(128) NOT NULL,
    connector_id      varchar(128) NOT NULL,
    sync_profile      boolean NOT NULL DEFAULT false,
    config_encrypted  bytea NOT NULL,
    kek_id            text NOT NULL,
    metadata          jsonb NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX connectors_connector_id ON connectors (tenant_id, connector_id);
