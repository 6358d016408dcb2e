-- A user this interaction's Register created whose login is not finished yet:
-- {"accountId": ..., "methods": [...]}. The next submit finishes it instead of
-- creating the user again; the finished state clears it.
ALTER TABLE interactions ADD COLUMN registered jsonb;
