-- Rate limits (tessera_kit.ratelimit): one row per limited key, in every service's schema, so
-- every replica of a service counts against the same limit. GCRA: `tat` is the theoretical
-- arrival time; a request is allowed while tat + step - now <= period. Keys are digests (no
-- address or identifier is stored); rows whose `tat` has passed carry nothing and are purged.
CREATE TABLE rate_limits (
    key       text PRIMARY KEY,
    tat       timestamptz NOT NULL,
    seen_at   timestamptz NOT NULL,
    step      interval NOT NULL,
    period    interval NOT NULL,
    allowed   boolean NOT NULL
);
CREATE INDEX rate_limits_tat ON rate_limits (tat);
