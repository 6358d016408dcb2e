-- An unfinished registration of this interaction: {"key": ..., "methods": [...]}. The key
-- is the idempotency key identity's create_user got, stored before the call, so the next
-- submit finds the user it created (reply lost, or the login rpc failed) and finishes the
-- registration instead of creating the user again. Finishing, or any change to the
-- interaction, clears it.
ALTER TABLE interactions ADD COLUMN registered jsonb;
