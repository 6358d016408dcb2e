-- One row per token family (the refresh and opaque access tokens descending from one code
-- exchange): what rotation and revocation lock, in that order before any token row, so the
-- two serialise. A refresh that commits while the family is being revoked is either seen by
-- the revocation's DELETE or finds `revoked_at` set when it gets the lock (RFC 9700 §4.14.2).
CREATE TABLE oidc_token_families (
    family_id   text PRIMARY KEY,
    tenant_id   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

INSERT INTO oidc_token_families (family_id, tenant_id)
SELECT family_id, min(tenant_id) FROM (
    SELECT family_id, tenant_id FROM oidc_refresh_tokens
    UNION ALL
    SELECT family_id, tenant_id FROM oidc_access_tokens WHERE family_id IS NOT NULL
) AS tokens GROUP BY family_id
ON CONFLICT DO NOTHING;
