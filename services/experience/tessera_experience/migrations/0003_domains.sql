-- Custom domains (Logto 1.6's `domains`): one hostname per tenant, its DNS records to set and
-- its status. Without a DNS provider nothing verifies them: they stay PendingVerification.
CREATE TABLE domains (
    tenant_id      text NOT NULL DEFAULT 'default',
    id             varchar(21) NOT NULL,
    domain         varchar(256) NOT NULL,
    status         varchar(32) NOT NULL DEFAULT 'PendingVerification',
    error_message  varchar(1024),
    dns_records    jsonb NOT NULL DEFAULT '[]',
    updated_at     timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, domain)
);
