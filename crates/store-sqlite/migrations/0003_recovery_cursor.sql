-- Recovery walks an account's events in (created_at, id) order from a cursor: an index
-- range scan per batch instead of a rescan from the start of the window.
CREATE INDEX events_account_created_id ON events (account_id, created_at, id);
DROP INDEX events_account_created;
