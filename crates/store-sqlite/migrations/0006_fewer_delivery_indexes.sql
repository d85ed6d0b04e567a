-- Every index on deliveries is written on each insert, and those holding next_retry_at or
-- status again on each lease and outcome. These two served little:
-- * deliveries_due (next_retry_at) answered only "when is the next retry due"; that is now a
--   probe per enabled webhook on deliveries_webhook_due, asked only after an empty claim.
-- * deliveries_webhook_created (webhook_id, created_at) served only the auto-disable count
--   (created_at >= window start, grouped by webhook, on a read connection), which it could
--   not bound: it leads with webhook_id, so that count scans the table with or without it.
DROP INDEX IF EXISTS deliveries_due;
DROP INDEX IF EXISTS deliveries_webhook_created;
