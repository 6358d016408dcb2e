-- The user list at a million users.

-- The list's whole order (newest first, ties by id) in one index: with created_at alone, users
-- created in one statement (an import, a bulk insert) share a time and PostgreSQL sorts all of
-- them to find a page; with id too, a page is read straight off the index, and a deep page's
-- ids come from the index alone (index-only scan) before the rows are fetched.
DROP INDEX users_created_at;
CREATE INDEX users_created_at ON users (tenant_id, created_at DESC, id DESC);

-- How often each trigram occurs per searchable column (ANALYZE keeps these up to date): a
-- `like` search leaves the trigrams most users share out of its index lookup
-- (tessera_kit.search.narrowed_like_pattern), as they filter nothing and cost the most.
CREATE STATISTICS users_id_trigrams ON (public.show_trgm(id)) FROM users;
CREATE STATISTICS users_username_trigrams ON (public.show_trgm(username)) FROM users;
CREATE STATISTICS users_primary_email_trigrams ON (public.show_trgm(primary_email)) FROM users;
CREATE STATISTICS users_primary_phone_trigrams ON (public.show_trgm(primary_phone)) FROM users;
CREATE STATISTICS users_name_trigrams ON (public.show_trgm(name)) FROM users;
