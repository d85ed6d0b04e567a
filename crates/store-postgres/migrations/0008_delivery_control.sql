-- Delivery control (SPEC §11): adaptive in-flight limit, rate limit, FIFO lanes and each
-- webhook's own retry policy. Webhooks from before keep today's behaviour: a fixed limit,
-- no rate limit, no ordering, the server's schedule.
ALTER TABLE webhooks ADD COLUMN concurrency TEXT NOT NULL DEFAULT 'fixed';
ALTER TABLE webhooks ADD COLUMN effective_max_in_flight BIGINT NOT NULL DEFAULT 0;
UPDATE webhooks SET effective_max_in_flight = max_in_flight;
ALTER TABLE webhooks ADD COLUMN adaptive_state TEXT;                 -- JSON, herald_domain::adaptive
ALTER TABLE webhooks ADD COLUMN rate_limit_per_second BIGINT;
ALTER TABLE webhooks ADD COLUMN rate_tokens DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN rate_refilled_at BIGINT NOT NULL DEFAULT 0;
-- No attempt starts before this instant: the next token, or a receiver's Retry-After.
ALTER TABLE webhooks ADD COLUMN ready_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none';
ALTER TABLE webhooks ADD COLUMN on_final_failure TEXT NOT NULL DEFAULT 'block';
ALTER TABLE webhooks ADD COLUMN retry_schedule TEXT;                 -- JSON [ms], NULL = the server's
ALTER TABLE webhooks ADD COLUMN max_age_ms BIGINT;

ALTER TABLE events ADD COLUMN ordering_key TEXT;
-- Set only on deliveries of FIFO webhooks ('' = the webhook's one lane), with lane_seq from
-- one sequence: a lane's order. A publish waits for no other, so two events of one key
-- published at the same moment are ordered by their sequence numbers, not their commits.
CREATE SEQUENCE deliveries_lane_seq;
ALTER TABLE deliveries ADD COLUMN ordering_key TEXT;
ALTER TABLE deliveries ADD COLUMN lane_seq BIGINT;
-- The open rows of each lane, in order: the head of a lane is its first entry here.
CREATE INDEX deliveries_lane ON deliveries (webhook_id, ordering_key, lane_seq)
    WHERE ordering_key IS NOT NULL AND status IN ('pending', 'blocked');
