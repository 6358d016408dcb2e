-- The scheduler claims each hook's due deliveries up to that hook's free slots: one index
-- probe per hook instead of a walk over every due delivery (a backlog of one hook).
CREATE INDEX deliveries_due_per_hook ON deliveries (hook_id, next_attempt_at) WHERE status = 'pending';
