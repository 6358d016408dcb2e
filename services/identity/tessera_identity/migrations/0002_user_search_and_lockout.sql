-- Indexes for the user search language (Logto §1.5) at a million users, the social-identity
-- lookup, and the identifier lockout counters.

-- pg_trgm is trusted (PostgreSQL 13+): a database owner may create it without superuser.
-- It lives in `public` so every service's schema finds it on its search path. Two services
-- migrating at the same moment may race to create it; the loser finds it there.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
EXCEPTION WHEN unique_violation OR duplicate_object THEN
    NULL;
END
$$;

-- `like` / `posix` / `similar_to` search (ILIKE, LIKE, ~*, ~, SIMILAR TO) on each searchable
-- column, and case-sensitive `exact` (`=`, which gin_trgm_ops supports since PostgreSQL 14).
CREATE INDEX users_id_trgm ON users USING gin (id public.gin_trgm_ops);
CREATE INDEX users_username_trgm ON users USING gin (username public.gin_trgm_ops);
CREATE INDEX users_primary_email_trgm ON users USING gin (primary_email public.gin_trgm_ops);
CREATE INDEX users_primary_phone_trgm ON users USING gin (primary_phone public.gin_trgm_ops);
CREATE INDEX users_name_trgm ON users USING gin (name public.gin_trgm_ops);

-- Case-insensitive `exact` compares lower(column) (lower(primary_email) is indexed by 0001;
-- ids and phones never hold upper-case letters, so they are compared as they are).
CREATE INDEX users_username_lower ON users (tenant_id, lower(username));
CREATE INDEX users_name_lower ON users (tenant_id, lower(name));

-- "Which user has this social identity": identities @> {"<target>": {"userId": "<id>"}}.
CREATE INDEX users_identities ON users USING gin (identities jsonb_path_ops);

-- Failed password verifications per identifier (a SHA-256 of "<type>:<normalised value>", so
-- no e-mail address or phone number is kept here). An attempt takes an `in_flight` slot
-- before its hash is checked and settles it after: a failure moves it to `failures`, a
-- success just gives it back. Slots are taken under the row's lock and only while
-- failures + in_flight stay under the limit, so parallel guesses can never exceed it.
CREATE TABLE password_attempts (
    tenant_id          text NOT NULL DEFAULT 'default',
    identifier_hash    text NOT NULL,
    window_started_at  timestamptz NOT NULL,
    failures           integer NOT NULL DEFAULT 0,
    in_flight          integer NOT NULL DEFAULT 0,
    locked_until       timestamptz,
    PRIMARY KEY (tenant_id, identifier_hash)
);
CREATE INDEX password_attempts_window ON password_attempts (window_started_at);
