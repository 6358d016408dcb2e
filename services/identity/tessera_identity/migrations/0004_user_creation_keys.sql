-- Idempotency keys of create_user rpc calls: a caller that lost the reply (a timeout) and
-- asks again with the same key gets the user it created, not a second one. Removed with
-- the user.
CREATE TABLE user_creation_keys (
    tenant_id   text NOT NULL DEFAULT 'default',
    key         text NOT NULL,
    user_id     varchar(12) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX user_creation_keys_user_id ON user_creation_keys (user_id);
