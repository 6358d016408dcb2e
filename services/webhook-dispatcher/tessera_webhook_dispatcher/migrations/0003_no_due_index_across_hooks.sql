-- Every look for due deliveries goes hook by hook (deliveries_due_per_hook): claim_due, and
-- next_attempt_at when a claim found nothing. This index by due time alone served
-- none of them, yet where one disabled hook held the only backlog, statistics made it look as
-- good for an enabled hook's probe, which then read the whole backlog on every look.
DROP INDEX deliveries_due;
