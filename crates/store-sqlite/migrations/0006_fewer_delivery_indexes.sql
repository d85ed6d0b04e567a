-- Every index on deliveries is written on each insert, lease and outcome (on PostgreSQL a
-- lease or outcome is never a HOT update: it changes indexed columns), so each one costs
-- every delivery three writes. These two served little:
-- * deliveries_due (next_retry_at) answered only "when is the next retry due"; that is now a
--   probe per enabled webhook on deliveries_webhook_due, asked only when a claim came back
--   empty.
-- * deliveries_webhook_created (webhook_id, created_at) served only the auto-disable count,
--   which reads the whole window (72 h by default) either way.
DROP INDEX IF EXISTS deliveries_due;
DROP INDEX IF EXISTS deliveries_webhook_created;
