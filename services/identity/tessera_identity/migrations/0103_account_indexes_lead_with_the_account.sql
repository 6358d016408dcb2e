-- A lookup by tenant and unique key (a code, a token, a session or grant id) must use the
-- primary key. With the tenant leading these indexes PostgreSQL chose them for such lookups on
-- a table it had not analysed yet (a new deployment's first minutes) and read every row of the
-- tenant for each code exchange. The account leads now; revoking a user's grants and tokens
-- (tenant and account) still reads by them.
DROP INDEX oidc_sessions_account;
CREATE INDEX oidc_sessions_account ON oidc_sessions (account_id, tenant_id);
DROP INDEX oidc_grants_account;
CREATE INDEX oidc_grants_account ON oidc_grants (account_id, tenant_id);
DROP INDEX oidc_authorization_codes_account;
CREATE INDEX oidc_authorization_codes_account ON oidc_authorization_codes (account_id, tenant_id);
DROP INDEX oidc_refresh_tokens_account;
CREATE INDEX oidc_refresh_tokens_account ON oidc_refresh_tokens (account_id, tenant_id);
DROP INDEX oidc_access_tokens_account;
CREATE INDEX oidc_access_tokens_account ON oidc_access_tokens (account_id, tenant_id);
